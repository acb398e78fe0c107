"""No over-correction: legitimate SQL keeps its true label, and runs.

Every case is analysed and then executed against a real throwaway database (TPC-H tables and
a few everyday ones) through the real executor, READ ONLY when labelled a read, exactly as an
approved request would be.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core.analysis import READ, analyse
from core.pg_functions import SIDE_EFFECT_FREE
from tests.conftest import pg_url_for
from tests.core.analysis_target import create_target, run_as_approved

# The 22 TPC-H queries with the specification's validation parameters (Q15's view as a WITH).
TPCH = [
    """SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
        sum(l_extendedprice) AS sum_base_price,
        sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
        sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
        avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price,
        avg(l_discount) AS avg_disc, count(*) AS count_order
    FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval '90' day
    GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus""",
    """SELECT s_acctbal, s_name, n_name, p_partkey, p_mfgr, s_address, s_phone, s_comment
    FROM part, supplier, partsupp, nation, region
    WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey AND p_size = 15
      AND p_type LIKE '%BRASS' AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
      AND r_name = 'EUROPE'
      AND ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region
          WHERE p_partkey = ps_partkey AND s_suppkey = ps_suppkey
            AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'EUROPE')
    ORDER BY s_acctbal DESC, n_name, s_name, p_partkey LIMIT 100""",
    """SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate,
        o_shippriority
    FROM customer, orders, lineitem
    WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
      AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15'
    GROUP BY l_orderkey, o_orderdate, o_shippriority
    ORDER BY revenue DESC, o_orderdate LIMIT 10""",
    """SELECT o_orderpriority, count(*) AS order_count FROM orders
    WHERE o_orderdate >= date '1993-07-01' AND o_orderdate < date '1993-07-01' + interval '3' month
      AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey
          AND l_commitdate < l_receiptdate)
    GROUP BY o_orderpriority ORDER BY o_orderpriority""",
    """SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue
    FROM customer, orders, lineitem, supplier, nation, region
    WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
      AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey
      AND n_regionkey = r_regionkey AND r_name = 'ASIA'
      AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1994-01-01' + interval '1' year
    GROUP BY n_name ORDER BY revenue DESC""",
    """SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem
    WHERE l_shipdate >= date '1994-01-01' AND l_shipdate < date '1994-01-01' + interval '1' year
      AND l_discount BETWEEN 0.06 - 0.01 AND 0.06 + 0.01 AND l_quantity < 24""",
    """SELECT supp_nation, cust_nation, l_year, sum(volume) AS revenue FROM (
        SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation,
            extract(year FROM l_shipdate) AS l_year,
            l_extendedprice * (1 - l_discount) AS volume
        FROM supplier, lineitem, orders, customer, nation n1, nation n2
        WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
          AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
          AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY')
            OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
          AND l_shipdate BETWEEN date '1995-01-01' AND date '1996-12-31') AS shipping
    GROUP BY supp_nation, cust_nation, l_year ORDER BY supp_nation, cust_nation, l_year""",
    """SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume)
        AS mkt_share
    FROM (SELECT extract(year FROM o_orderdate) AS o_year,
            l_extendedprice * (1 - l_discount) AS volume, n2.n_name AS nation
        FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
        WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey
          AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey
          AND n1.n_regionkey = r_regionkey AND r_name = 'AMERICA'
          AND s_nationkey = n2.n_nationkey
          AND o_orderdate BETWEEN date '1995-01-01' AND date '1996-12-31'
          AND p_type = 'ECONOMY ANODIZED STEEL') AS all_nations
    GROUP BY o_year ORDER BY o_year""",
    """SELECT nation, o_year, sum(amount) AS sum_profit
    FROM (SELECT n_name AS nation, extract(year FROM o_orderdate) AS o_year,
            l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity AS amount
        FROM part, supplier, lineitem, partsupp, orders, nation
        WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey
          AND p_partkey = l_partkey AND o_orderkey = l_orderkey
          AND s_nationkey = n_nationkey AND p_name LIKE '%green%') AS profit
    GROUP BY nation, o_year ORDER BY nation, o_year DESC""",
    """SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue,
        c_acctbal, n_name, c_address, c_phone, c_comment
    FROM customer, orders, lineitem, nation
    WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey
      AND o_orderdate >= date '1993-10-01' AND o_orderdate < date '1993-10-01' + interval '3' month
      AND l_returnflag = 'R' AND c_nationkey = n_nationkey
    GROUP BY c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
    ORDER BY revenue DESC LIMIT 20""",
    """SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value
    FROM partsupp, supplier, nation
    WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY'
    GROUP BY ps_partkey HAVING sum(ps_supplycost * ps_availqty) > (
        SELECT sum(ps_supplycost * ps_availqty) * 0.0001000000
        FROM partsupp, supplier, nation
        WHERE ps_suppkey = s_suppkey AND s_nationkey = n_nationkey AND n_name = 'GERMANY')
    ORDER BY value DESC""",
    """SELECT l_shipmode,
        sum(CASE WHEN o_orderpriority = '1-URGENT' OR o_orderpriority = '2-HIGH'
            THEN 1 ELSE 0 END) AS high_line_count,
        sum(CASE WHEN o_orderpriority <> '1-URGENT' AND o_orderpriority <> '2-HIGH'
            THEN 1 ELSE 0 END) AS low_line_count
    FROM orders, lineitem
    WHERE o_orderkey = l_orderkey AND l_shipmode IN ('MAIL', 'SHIP')
      AND l_commitdate < l_receiptdate AND l_shipdate < l_commitdate
      AND l_receiptdate >= date '1994-01-01'
      AND l_receiptdate < date '1994-01-01' + interval '1' year
    GROUP BY l_shipmode ORDER BY l_shipmode""",
    """SELECT c_count, count(*) AS custdist
    FROM (SELECT c_custkey, count(o_orderkey)
        FROM customer LEFT OUTER JOIN orders
          ON c_custkey = o_custkey AND o_comment NOT LIKE '%special%requests%'
        GROUP BY c_custkey) AS c_orders (c_custkey, c_count)
    GROUP BY c_count ORDER BY custdist DESC, c_count DESC""",
    """SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%'
            THEN l_extendedprice * (1 - l_discount) ELSE 0 END)
        / sum(l_extendedprice * (1 - l_discount)) AS promo_revenue
    FROM lineitem, part
    WHERE l_partkey = p_partkey AND l_shipdate >= date '1995-09-01'
      AND l_shipdate < date '1995-09-01' + interval '1' month""",
    """WITH revenue0 (supplier_no, total_revenue) AS (
        SELECT l_suppkey, sum(l_extendedprice * (1 - l_discount)) FROM lineitem
        WHERE l_shipdate >= date '1996-01-01'
          AND l_shipdate < date '1996-01-01' + interval '3' month
        GROUP BY l_suppkey)
    SELECT s_suppkey, s_name, s_address, s_phone, total_revenue
    FROM supplier, revenue0
    WHERE s_suppkey = supplier_no
      AND total_revenue = (SELECT max(total_revenue) FROM revenue0)
    ORDER BY s_suppkey""",
    """SELECT p_brand, p_type, p_size, count(DISTINCT ps_suppkey) AS supplier_cnt
    FROM partsupp, part
    WHERE p_partkey = ps_partkey AND p_brand <> 'Brand#45'
      AND p_type NOT LIKE 'MEDIUM POLISHED%' AND p_size IN (49, 14, 23, 45, 19, 3, 36, 9)
      AND ps_suppkey NOT IN (SELECT s_suppkey FROM supplier
          WHERE s_comment LIKE '%Customer%Complaints%')
    GROUP BY p_brand, p_type, p_size
    ORDER BY supplier_cnt DESC, p_brand, p_type, p_size""",
    """SELECT sum(l_extendedprice) / 7.0 AS avg_yearly FROM lineitem, part
    WHERE p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container = 'MED BOX'
      AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem
          WHERE l_partkey = p_partkey)""",
    """SELECT c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
    FROM customer, orders, lineitem
    WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey
          HAVING sum(l_quantity) > 300)
      AND c_custkey = o_custkey AND o_orderkey = l_orderkey
    GROUP BY c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
    ORDER BY o_totalprice DESC, o_orderdate LIMIT 100""",
    """SELECT sum(l_extendedprice * (1 - l_discount)) AS revenue FROM lineitem, part
    WHERE (p_partkey = l_partkey AND p_brand = 'Brand#12'
          AND p_container IN ('SM CASE', 'SM BOX', 'SM PACK', 'SM PKG')
          AND l_quantity >= 1 AND l_quantity <= 1 + 10 AND p_size BETWEEN 1 AND 5
          AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')
       OR (p_partkey = l_partkey AND p_brand = 'Brand#23'
          AND p_container IN ('MED BAG', 'MED BOX', 'MED PKG', 'MED PACK')
          AND l_quantity >= 10 AND l_quantity <= 10 + 10 AND p_size BETWEEN 1 AND 10
          AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')""",
    """SELECT s_name, s_address FROM supplier, nation
    WHERE s_suppkey IN (SELECT ps_suppkey FROM partsupp
        WHERE ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
          AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem
              WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey
                AND l_shipdate >= date '1994-01-01'
                AND l_shipdate < date '1994-01-01' + interval '1' year))
      AND s_nationkey = n_nationkey AND n_name = 'CANADA'
    ORDER BY s_name""",
    """SELECT s_name, count(*) AS numwait FROM supplier, lineitem l1, orders, nation
    WHERE s_suppkey = l1.l_suppkey AND o_orderkey = l1.l_orderkey AND o_orderstatus = 'F'
      AND l1.l_receiptdate > l1.l_commitdate
      AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.l_orderkey = l1.l_orderkey
          AND l2.l_suppkey <> l1.l_suppkey)
      AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey
          AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate)
      AND s_nationkey = n_nationkey AND n_name = 'SAUDI ARABIA'
    GROUP BY s_name ORDER BY numwait DESC, s_name LIMIT 100""",
    """SELECT cntrycode, count(*) AS numcust, sum(c_acctbal) AS totacctbal
    FROM (SELECT substring(c_phone FROM 1 FOR 2) AS cntrycode, c_acctbal FROM customer
        WHERE substring(c_phone FROM 1 FOR 2) IN ('13', '31', '23', '29', '30', '18', '17')
          AND c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE c_acctbal > 0.00
              AND substring(c_phone FROM 1 FOR 2)
                  IN ('13', '31', '23', '29', '30', '18', '17'))
          AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = c_custkey)) AS custsale
    GROUP BY cntrycode ORDER BY cntrycode""",
]

EVERYDAY_READS = [
    # window functions
    "SELECT id, salary, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM employees",
    "SELECT id, sum(salary) OVER (ORDER BY hired ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) "
    "FROM employees",
    "SELECT dept, name, lag(salary) OVER w, lead(salary, 1, 0) OVER w, "
    "first_value(name) OVER w, nth_value(name, 2) OVER w "
    "FROM employees WINDOW w AS (PARTITION BY dept ORDER BY hired)",
    "SELECT o_orderkey, ntile(4) OVER (ORDER BY o_totalprice), "
    "percent_rank() OVER (ORDER BY o_totalprice), cume_dist() OVER (ORDER BY o_totalprice), "
    "row_number() OVER (), dense_rank() OVER (ORDER BY o_orderdate) FROM orders",
    "SELECT avg(o_totalprice) OVER (ORDER BY o_orderdate RANGE BETWEEN "
    "interval '30 days' PRECEDING AND CURRENT ROW) FROM orders",
    # recursive and plain CTEs
    "WITH RECURSIVE chain AS (SELECT id, name, manager_id, 1 AS depth FROM employees "
    "WHERE manager_id IS NULL UNION ALL SELECT e.id, e.name, e.manager_id, c.depth + 1 "
    "FROM employees e JOIN chain c ON e.manager_id = c.id) SELECT * FROM chain",
    "WITH RECURSIVE n(i) AS (VALUES (1) UNION ALL SELECT i + 1 FROM n WHERE i < 10) "
    "SELECT sum(i) FROM n",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION SELECT n * 2 FROM t WHERE n < 100) "
    "SEARCH DEPTH FIRST BY n SET ordercol SELECT * FROM t",
    "WITH big AS MATERIALIZED (SELECT * FROM orders WHERE o_totalprice > 100) "
    "SELECT count(*) FROM big",
    "WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM a, b",
    # LATERAL
    "SELECT c.c_name, o.* FROM customer c CROSS JOIN LATERAL (SELECT o_orderkey, o_totalprice "
    "FROM orders WHERE o_custkey = c.c_custkey ORDER BY o_totalprice DESC LIMIT 2) o",
    "SELECT e.id, item FROM events e, LATERAL jsonb_array_elements(e.payload -> 'items') item",
    "SELECT * FROM customer c LEFT JOIN LATERAL (SELECT max(o_orderdate) AS last_order "
    "FROM orders WHERE o_custkey = c.c_custkey) l ON true",
    # GROUPING SETS, ROLLUP, CUBE
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) FROM lineitem "
    "GROUP BY GROUPING SETS ((l_returnflag), (l_linestatus), ())",
    "SELECT dept, extract(year FROM hired) AS y, count(*), grouping(dept) FROM employees "
    "GROUP BY ROLLUP (dept, extract(year FROM hired))",
    "SELECT l_shipmode, l_returnflag, count(*) FROM lineitem "
    "GROUP BY CUBE (l_shipmode, l_returnflag)",
    # JSON and JSONB
    "SELECT payload ->> 'plan', payload -> 'ref' ->> 'src', payload #>> '{items,0,sku}' "
    "FROM events",
    "SELECT * FROM events WHERE payload @> '{\"plan\": \"pro\"}' AND payload ? 'items'",
    "SELECT jsonb_path_query(payload, '$.items[*].qty') FROM events",
    "SELECT jsonb_build_object('id', id, 'kind', kind), jsonb_agg(tags) OVER () FROM events",
    "SELECT key, value FROM events, jsonb_each(payload) WHERE id = 1",
    "SELECT jsonb_pretty(payload), jsonb_typeof(payload -> 'items'), "
    "jsonb_array_length(payload -> 'items') FROM events",
    "SELECT json_agg(row_to_json(e)) FROM (SELECT id, kind FROM events) e",
    'SELECT * FROM jsonb_to_recordset(\'[{"a": 1, "b": "x"}]\') AS r(a int, b text)',
    "SELECT payload || '{\"seen\": true}', payload - 'ref', jsonb_set(payload, '{plan}', "
    "'\"team\"') FROM events",
    "SELECT to_jsonb(o) FROM orders o WHERE o_orderkey = 1",
    "SELECT jsonb_object_agg(kind, user_id) FROM events",
    # arrays
    "SELECT * FROM events WHERE tags && ARRAY['promo'] OR 'app' = ANY (tags)",
    "SELECT unnest(tags), array_length(tags, 1), cardinality(tags) FROM events",
    "SELECT array_agg(DISTINCT kind ORDER BY kind), array_to_string(array_agg(id), ',') "
    "FROM events",
    "SELECT ARRAY[1, 2] || 3, array_position(ARRAY['a', 'b'], 'b'), "
    "array_remove(ARRAY[1, 2, 1], 1), (ARRAY[4, 5, 6])[2:3]",
    "SELECT * FROM unnest(ARRAY[1, 2], ARRAY['a', 'b']) WITH ORDINALITY AS t(n, s, i)",
    # full-text search
    "SELECT id FROM events WHERE to_tsvector('english', body) @@ to_tsquery('english', 'fox')",
    "SELECT ts_rank(to_tsvector(body), plainto_tsquery('lazy dog')), "
    "ts_headline('english', body, websearch_to_tsquery('english', 'quick -slow')) FROM events",
    "SELECT setweight(to_tsvector('simple', kind), 'A') || to_tsvector(body) FROM events",
    # DISTINCT ON, FILTER
    "SELECT DISTINCT ON (o_custkey) o_custkey, o_orderkey, o_orderdate FROM orders "
    "ORDER BY o_custkey, o_orderdate DESC",
    "SELECT count(*) FILTER (WHERE o_orderstatus = 'F') AS finished, "
    "sum(o_totalprice) FILTER (WHERE o_orderdate >= date '1996-01-01') FROM orders",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY salary), "
    "mode() WITHIN GROUP (ORDER BY dept) FROM employees",
    # generate_series and dates
    "SELECT d::date, count(o_orderkey) FROM generate_series(date '1995-01-01', "
    "date '1995-12-01', interval '1 month') d LEFT JOIN orders "
    "ON date_trunc('month', o_orderdate) = d GROUP BY d ORDER BY d",
    "SELECT generate_series(1, 5) AS n, random() < 2 AS always",
    "SELECT now() - interval '1 day', current_date, clock_timestamp() > now() - interval '1h', "
    "age(timestamp '2024-01-01'), to_char(now(), 'YYYY-MM'), date_part('dow', now())",
    "SELECT make_date(2024, 2, 29), justify_interval(interval '40 days'), "
    "extract(epoch FROM timestamptz '2024-01-01 00:00+00')",
    "SELECT o_orderdate AT TIME ZONE 'UTC', date_bin('15 minutes', now(), "
    "timestamp '2001-01-01') FROM orders",
    # strings, math, conditionals, casts
    "SELECT upper(c_name), lower(c_name), initcap(c_mktsegment), length(c_comment), "
    "left(c_phone, 2), right(c_phone, 4), lpad(c_custkey::text, 6, '0') FROM customer",
    "SELECT format('%s has %L', c_name, c_mktsegment), concat_ws('-', c_custkey, c_name), "
    "replace(c_comment, 'c', 'C'), regexp_replace(c_phone, '[^0-9]', '', 'g') FROM customer",
    "SELECT split_part(c_phone, '-', 1), string_to_array(c_phone, '-'), "
    "position('-' IN c_phone), trim(BOTH ' ' FROM c_name), md5(c_name) FROM customer",
    "SELECT coalesce(manager_id, 0), nullif(dept, 'ops'), greatest(salary, 100), "
    "least(salary, 1000), CASE WHEN salary > 150 THEN 'high' ELSE 'low' END FROM employees",
    "SELECT round(avg(salary), 2), trunc(stddev(salary)), abs(-1), power(2, 10), sqrt(16), "
    "ceil(1.2), floor(1.8), mod(7, 3), width_bucket(salary, 0, 300, 3) FROM employees "
    "GROUP BY salary",
    "SELECT '42'::int + 1, CAST('2024-01-01' AS date), 12.5::numeric(10, 2), "
    "'a,b'::text, 'orders'::regclass, pg_typeof(1.5)",
    "SELECT gen_random_uuid() IS NOT NULL, md5(random()::text) <> ''",
    "SELECT c_name FROM customer WHERE c_name ILIKE 'cust%' AND c_phone ~ '^[0-9]{2}-' "
    "AND c_name SIMILAR TO 'Customer#[0-9]+'",
    "SELECT string_agg(name, ', ' ORDER BY name), bool_and(salary > 0), every(salary > 0), "
    "bit_or(id) FROM employees",
    # set operations, VALUES, TABLE, subqueries
    "SELECT c_custkey FROM customer UNION SELECT o_custkey FROM orders "
    "EXCEPT SELECT 99 INTERSECT SELECT c_custkey FROM customer",
    "VALUES (1, 'one'), (2, 'two') ORDER BY 1 DESC",
    "TABLE region",
    "SELECT * FROM (VALUES (1), (2)) v(n) WHERE n IN (SELECT r_regionkey FROM region)",
    "SELECT r_name, (SELECT count(*) FROM nation n WHERE n.n_regionkey = r.r_regionkey) "
    "FROM region r WHERE EXISTS (SELECT 1 FROM nation WHERE n_regionkey = r_regionkey)",
    "SELECT * FROM orders TABLESAMPLE SYSTEM (50) REPEATABLE (1)",
    "SELECT * FROM orders ORDER BY o_orderdate DESC NULLS LAST OFFSET 0 FETCH FIRST 1 ROW ONLY",
    "SELECT * FROM orders o FULL JOIN customer c ON c.c_custkey = o.o_custkey "
    "NATURAL JOIN (SELECT 1 AS one) x",
    # catalogue look-ups people run
    "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1",
    "SELECT pid, state, now() - query_start AS running_for FROM pg_stat_activity "
    "WHERE datname = current_database()",
    "SELECT current_user, session_user, current_database(), current_schema(), version(), "
    "current_setting('statement_timeout'), pg_backend_pid() > 0",
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_name = 'orders' ORDER BY ordinal_position",
    "SELECT pg_get_indexdef(indexrelid), pg_get_constraintdef(c.oid) FROM pg_index i "
    "JOIN pg_constraint c ON c.conindid = i.indexrelid LIMIT 3",
    "SELECT has_table_privilege('orders', 'SELECT'), to_regclass('public.orders')",
    "SELECT count(*) FROM pg_locks WHERE NOT granted",
    "SELECT currval('invoice_numbers') FROM (SELECT 1) x WHERE false",
    # EXPLAIN without ANALYZE, SHOW
    "EXPLAIN SELECT * FROM orders WHERE o_orderkey = 1",
    "EXPLAIN (COSTS false, VERBOSE) SELECT count(*) FROM lineitem",
    "EXPLAIN (ANALYZE true, ANALYZE false) UPDATE orders SET o_comment = 'x'",
    "EXPLAIN (FORMAT JSON) DELETE FROM lineitem WHERE l_orderkey = 1",
    "EXPLAIN ANALYZE SELECT count(*) FROM orders",
    "SHOW statement_timeout",
    "SHOW ALL",
    "SHOW transaction_read_only",
]

ORDINARY_WRITES = [
    "INSERT INTO staged_prices VALUES (2, 903.00) "
    "ON CONFLICT (p_partkey) DO UPDATE SET price = excluded.price",
    "INSERT INTO staged_prices VALUES (1, 1.00) ON CONFLICT DO NOTHING",
    "UPDATE part SET p_retailprice = s.price FROM staged_prices s "
    "WHERE s.p_partkey = part.p_partkey",
    "DELETE FROM staged_prices USING part WHERE part.p_partkey = staged_prices.p_partkey "
    "AND staged_prices.price < 0",
    "MERGE INTO part p USING staged_prices s ON p.p_partkey = s.p_partkey "
    "WHEN MATCHED THEN UPDATE SET p_retailprice = s.price WHEN NOT MATCHED THEN DO NOTHING",
    "INSERT INTO audit_log (note) VALUES ('price sync') RETURNING id",
    "UPDATE employees SET salary = salary * 1.1 WHERE dept = 'ops' RETURNING id, salary",
    "DELETE FROM audit_log WHERE note = 'nothing' RETURNING *",
    "INSERT INTO events (user_id, kind, payload, tags) "
    "SELECT c_custkey, 'import', jsonb_build_object('name', c_name), ARRAY['import'] "
    "FROM customer",
    "WITH moved AS (DELETE FROM audit_log WHERE id < 0 RETURNING note) "
    "INSERT INTO audit_log (note) SELECT note FROM moved",
    "UPDATE orders SET o_comment = o_comment || '!' WHERE o_orderkey IN "
    "(SELECT l_orderkey FROM lineitem WHERE l_returnflag = 'R')",
    "INSERT INTO audit_log (id, note) VALUES (nextval('audit_log_id_seq'), 'explicit id')",
    "SELECT * FROM employees WHERE dept = 'eng' FOR UPDATE",
    "SELECT * FROM orders o JOIN customer c ON c.c_custkey = o.o_custkey "
    "FOR NO KEY UPDATE OF o SKIP LOCKED",
    "EXPLAIN ANALYZE UPDATE orders SET o_comment = 'analysed' WHERE o_orderkey = 2",
    "SELECT nextval('invoice_numbers')",
    "SELECT setval('invoice_numbers', 100)",
    "LOCK TABLE staged_prices IN SHARE MODE",
]

SCHEMA_CHANGES = [
    "CREATE TABLE scratch_totals AS SELECT o_custkey, sum(o_totalprice) FROM orders "
    "GROUP BY o_custkey",
    "CREATE INDEX lineitem_shipdate ON lineitem (l_shipdate)",
    "ALTER TABLE audit_log ADD COLUMN created_at timestamptz DEFAULT now()",
    "CREATE VIEW big_orders AS SELECT * FROM orders WHERE o_totalprice > 1500",
    "COMMENT ON TABLE orders IS 'TPC-H orders'",
]

CASES = (
    [pytest.param(sql, "read", id=f"tpch-q{n}") for n, sql in enumerate(TPCH, 1)]
    + [pytest.param(sql, "read", id=f"read-{n}") for n, sql in enumerate(EVERYDAY_READS, 1)]
    + [pytest.param(sql, "write", id=f"write-{n}") for n, sql in enumerate(ORDINARY_WRITES, 1)]
    + [pytest.param(sql, "ddl", id=f"ddl-{n}") for n, sql in enumerate(SCHEMA_CHANGES, 1)]
)


@pytest.fixture(scope="module")
def target_url(pg_database: str) -> str:
    url = pg_url_for(pg_database)
    create_target(url)
    return url


def test_the_table_is_big_enough() -> None:
    counts = Counter(case.values[1] for case in CASES)
    assert len(TPCH) == 22
    assert sum(counts.values()) >= 100
    assert counts["write"] >= 15 and counts["ddl"] >= 5


@pytest.mark.parametrize(("sql", "label"), CASES)
def test_legitimate_sql_keeps_its_label_and_runs(
    target_url: str, tmp_path: Path, sql: str, label: str
) -> None:
    analysis = analyse("postgresql", sql)
    assert analysis.kind == label, analysis.reasons
    assert analysis.warnings == ()
    if label == READ:
        assert analysis.reasons == ()
    else:
        assert analysis.reasons, "a request that is not a read says why"
    result = run_as_approved(target_url, sql, tmp_path)
    assert result.statements


def test_allow_list_names_only_real_side_effect_free_functions() -> None:
    for name in ("set_config", "pg_terminate_backend", "lo_unlink", "nextval", "pg_read_file"):
        assert name not in SIDE_EFFECT_FREE
    for name in ("sum", "jsonb_path_query", "generate_series", "to_tsvector", "row_number"):
        assert name in SIDE_EFFECT_FREE
