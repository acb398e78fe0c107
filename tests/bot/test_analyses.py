"""The approval DM's analysis of a stored request is the one submit made."""

from __future__ import annotations

from bot.analyses import RecentAnalyses
from tests.core.test_stored_analysis import CATALOGUE, stored


def test_the_approval_dm_cache_analyses_under_the_instance():
    analyses = RecentAnalyses(CATALOGUE)
    assert analyses.of(stored("mongo-js")).kind == "admin"
    assert analyses.of(stored("mongo-events")) is None
