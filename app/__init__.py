"""The composition root: one `dbquery` process serving both surfaces over one core.

bot/ (Slack) and web/ (pages and API) never import each other; this package is the only
place that knows both.
"""
