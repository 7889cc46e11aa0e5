"""Runs packaging/athena/fleet-preflight.sql with DuckDB over a directory laid
out as a Resource Data Sync writes its S3 prefix, and prints the rows as JSON.

The three tables are what a Glue crawler makes of the sync: newline-delimited
JSON under <type>/accountid=…/region=…/resourcetype=…/<node>.json, the three
partition keys as columns, column names folded to lower case (DuckDB's names
are case-insensitive, as Athena's are). Athena's from_iso8601_timestamp is
the one function DuckDB lacks: a macro stands in for it.

usage: python3 run_query.py SYNC_DIR QUERY_FILE
"""

import json
import sys

import duckdb

sync_dir, query_file = sys.argv[1], sys.argv[2]
db = duckdb.connect()
db.execute("CREATE MACRO from_iso8601_timestamp(t) AS CAST(t AS TIMESTAMPTZ)")
for table, prefix in [
    ("aws_complianceitem", "AWS:ComplianceItem"),
    ("aws_instanceinformation", "AWS:InstanceInformation"),
    ("aws_tag", "AWS:Tag"),
]:
    pattern = f"{sync_dir}/{prefix}/*/*/*/*.json"
    db.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_json_auto('{pattern}', "
        "format = 'newline_delimited', hive_partitioning = true, union_by_name = true)"
    )
cursor = db.execute(open(query_file).read())
names = [d[0] for d in cursor.description]
rows = [dict(zip(names, row)) for row in cursor.fetchall()]
print(json.dumps(rows, default=str))
