-- The fleet view of `ssm-preflight fleet`, over a Resource Data Sync, for
-- fleets past the API's comfortable range (100,000 nodes and more).
--
-- Tables: the ones an AWS Glue crawler makes from the sync's S3 prefix
-- (docs/fleet.md, "The fleet view at any scale"): aws_complianceitem,
-- aws_instanceinformation and aws_tag, partitioned by accountid, region
-- and resourcetype. Each node falls in exactly one state, as in the
-- command: offline (its InstanceStatus is not Active), silent (no
-- Custom:PatchPreflight report), stale (the report is older than a day),
-- blocked (a NON_COMPLIANT check: the sync carries no item details, so
-- every failure counts, the default gate's rule), ready. A group crosses
-- when its blocked + silent + offline nodes pass 10 % of it (the command's
-- --max-blocked default), and is close within 5 points of that.
WITH groups AS (
  SELECT accountid, region, resourceid, max(value) AS patch_group
  FROM aws_tag
  WHERE key IN ('Patch Group', 'PatchGroup')
  GROUP BY accountid, region, resourceid
),
nodes AS (
  SELECT i.accountid, i.region, i.resourceid, i.instancestatus,
         coalesce(g.patch_group, '(no patch group)') AS patch_group
  FROM aws_instanceinformation i
  LEFT JOIN groups g
    ON g.accountid = i.accountid AND g.region = i.region AND g.resourceid = i.resourceid
),
reports AS (
  SELECT accountid, region, resourceid,
         max(from_iso8601_timestamp(executiontime)) AS reported_at,
         count_if(status = 'NON_COMPLIANT') AS failing
  FROM aws_complianceitem
  WHERE compliancetype = 'Custom:PatchPreflight'
  GROUP BY accountid, region, resourceid
),
states AS (
  SELECT n.accountid, n.region, n.patch_group,
         CASE
           WHEN n.instancestatus <> 'Active' THEN 'offline'
           WHEN r.resourceid IS NULL THEN 'silent'
           WHEN r.reported_at < current_timestamp - INTERVAL '1' DAY THEN 'stale'
           WHEN r.failing > 0 THEN 'blocked'
           ELSE 'ready'
         END AS state
  FROM nodes n
  LEFT JOIN reports r
    ON r.accountid = n.accountid AND r.region = n.region AND r.resourceid = n.resourceid
),
counts AS (
  SELECT accountid, region, patch_group,
         count(*) AS nodes,
         count_if(state = 'ready') AS ready,
         count_if(state = 'blocked') AS blocked,
         count_if(state = 'stale') AS stale,
         count_if(state = 'silent') AS silent,
         count_if(state = 'offline') AS offline,
         count_if(state IN ('blocked', 'silent', 'offline')) AS failing
  FROM states
  GROUP BY accountid, region, patch_group
)
SELECT accountid, region, patch_group, nodes, ready, blocked, stale, silent, offline,
       round(100.0 * failing / nodes, 1) AS share,
       CASE
         WHEN failing > floor(0.10 * nodes) THEN 'crosses'
         WHEN 100.0 * failing / nodes > 5 THEN 'close'
         ELSE 'ok'
       END AS verdict
FROM counts
ORDER BY accountid, region, patch_group
