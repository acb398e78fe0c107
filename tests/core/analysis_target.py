"""A throwaway target database for the analysis tables: the TPC-H schema and a few everyday
tables, with a handful of rows, and a way to run a request through the real executor."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from core.analysis import analyse
from core.executors.base import Connection, Job
from core.executors.postgres import execute_postgres
from core.executors.results import ExecutionResult

SCHEMA = """
CREATE TABLE region (r_regionkey int PRIMARY KEY, r_name char(25), r_comment varchar(152));
CREATE TABLE nation (
    n_nationkey int PRIMARY KEY, n_name char(25), n_regionkey int, n_comment varchar(152));
CREATE TABLE part (
    p_partkey int PRIMARY KEY, p_name varchar(55), p_mfgr char(25), p_brand char(10),
    p_type varchar(25), p_size int, p_container char(10), p_retailprice numeric(15, 2),
    p_comment varchar(23));
CREATE TABLE supplier (
    s_suppkey int PRIMARY KEY, s_name char(25), s_address varchar(40), s_nationkey int,
    s_phone char(15), s_acctbal numeric(15, 2), s_comment varchar(101));
CREATE TABLE partsupp (
    ps_partkey int, ps_suppkey int, ps_availqty int, ps_supplycost numeric(15, 2),
    ps_comment varchar(199), PRIMARY KEY (ps_partkey, ps_suppkey));
CREATE TABLE customer (
    c_custkey int PRIMARY KEY, c_name varchar(25), c_address varchar(40), c_nationkey int,
    c_phone char(15), c_acctbal numeric(15, 2), c_mktsegment char(10), c_comment varchar(117));
CREATE TABLE orders (
    o_orderkey int PRIMARY KEY, o_custkey int, o_orderstatus char(1),
    o_totalprice numeric(15, 2), o_orderdate date, o_orderpriority char(15), o_clerk char(15),
    o_shippriority int, o_comment varchar(79));
CREATE TABLE lineitem (
    l_orderkey int, l_partkey int, l_suppkey int, l_linenumber int, l_quantity numeric(15, 2),
    l_extendedprice numeric(15, 2), l_discount numeric(15, 2), l_tax numeric(15, 2),
    l_returnflag char(1), l_linestatus char(1), l_shipdate date, l_commitdate date,
    l_receiptdate date, l_shipinstruct char(25), l_shipmode char(10), l_comment varchar(44),
    PRIMARY KEY (l_orderkey, l_linenumber));
CREATE TABLE events (
    id bigserial PRIMARY KEY, user_id int, kind text, payload jsonb, tags text[],
    happened_at timestamptz NOT NULL DEFAULT now(), body text);
CREATE TABLE employees (
    id int PRIMARY KEY, name text, manager_id int, dept text, salary numeric, hired date);
CREATE TABLE staged_prices (p_partkey int PRIMARY KEY, price numeric);
CREATE TABLE audit_log (id bigserial PRIMARY KEY, note text);
CREATE SEQUENCE invoice_numbers;

INSERT INTO region VALUES (0, 'AFRICA', 'r0'), (1, 'AMERICA', 'r1'), (2, 'ASIA', 'r2'),
    (3, 'EUROPE', 'r3'), (4, 'MIDDLE EAST', 'r4');
INSERT INTO nation VALUES (0, 'ALGERIA', 0, 'n0'), (1, 'BRAZIL', 1, 'n1'),
    (7, 'GERMANY', 3, 'n7'), (6, 'FRANCE', 3, 'n6'), (20, 'SAUDI ARABIA', 4, 'n20'),
    (8, 'INDIA', 2, 'n8'), (24, 'UNITED STATES', 1, 'n24'), (3, 'CANADA', 1, 'n3');
INSERT INTO part VALUES
    (1, 'forest green lace', 'Manufacturer#1', 'Brand#12', 'ECONOMY ANODIZED STEEL', 15,
     'SM BOX', 901.00, 'c1'),
    (2, 'blush thistle', 'Manufacturer#2', 'Brand#23', 'PROMO BRUSHED BRASS', 1, 'MED BAG',
     902.00, 'c2');
INSERT INTO supplier VALUES
    (1, 'Supplier#1', 'addr', 6, '16-123-456-7890', 5000.00, 'Customer Complaints'),
    (2, 'Supplier#2', 'addr', 20, '30-123-456-7890', 100.00, 'ok');
INSERT INTO partsupp VALUES (1, 1, 100, 10.00, 'ps'), (2, 2, 50, 20.00, 'ps');
INSERT INTO customer VALUES
    (1, 'Customer#1', 'addr', 7, '13-123-456-7890', 711.56, 'BUILDING', 'c'),
    (2, 'Customer#2', 'addr', 24, '31-123-456-7890', 121.65, 'AUTOMOBILE', 'special requests');
INSERT INTO orders VALUES
    (1, 1, 'F', 1000.00, '1995-03-10', '1-URGENT', 'Clerk#1', 0, 'o'),
    (2, 2, 'O', 2000.00, '1996-01-02', '5-LOW', 'Clerk#2', 0, 'o');
INSERT INTO lineitem VALUES
    (1, 1, 1, 1, 17, 1700.00, 0.05, 0.02, 'N', 'O', '1995-03-20', '1995-03-15', '1995-03-25',
     'DELIVER IN PERSON', 'AIR', 'l'),
    (2, 2, 2, 1, 36, 3600.00, 0.06, 0.04, 'R', 'F', '1994-02-01', '1994-01-20', '1994-02-10',
     'NONE', 'MAIL', 'l');
INSERT INTO events (user_id, kind, payload, tags, body) VALUES
    (1, 'signup', '{"plan": "pro", "items": [{"sku": "a", "qty": 2}], "ref": {"src": "ad"}}',
     '{web,promo}', 'the quick brown fox'),
    (2, 'click', '{"plan": "free", "items": []}', '{app}', 'jumps over the lazy dog');
INSERT INTO employees VALUES (1, 'Ada', NULL, 'eng', 200, '2020-01-01'),
    (2, 'Bob', 1, 'eng', 150, '2021-05-01'), (3, 'Cy', 1, 'ops', 120, '2022-02-01');
INSERT INTO staged_prices VALUES (1, 950.00), (3, 10.00);
"""


def create_target(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)


def connection_for(url: str, **overrides: object) -> Connection:
    params = conninfo_to_dict(url)
    fields: dict[str, object] = {
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "database": params["dbname"],
        "username": params.get("user"),
        "password": params.get("password"),
        "statement_timeout_s": 10,
    }
    fields.update(overrides)
    return Connection(**fields)  # type: ignore[arg-type]


def run_as_approved(
    url: str, content: str, out_dir: Path, submission_type: str = "query", **connection: object
) -> ExecutionResult:
    """Execute as the worker would once approved: READ ONLY when the analysis says read."""
    analysis = analyse("postgresql", content, submission_type)
    job = Job(
        request_uuid=str(uuid.uuid4()),
        submission_type=submission_type,
        content=content,
        out_dir=out_dir,
        read_only=analysis.read_only,
    )
    return execute_postgres(connection_for(url, **connection), job)
