--! publish: spend_hourly
--! day_key: epoch(hour)
-- mart_spend: the ledger every money, energy and carbon figure is read from. Each row is one
-- slice of one GPU's hour: who it is charged to (model, tenant, route of the requests, or no
-- one) and why (its bucket). Per GPU and hour the rows add up to gpu_time exactly, so
-- spend = attributed + idle + other waste holds on every surface and under every filter.
--   bucket     useful, failed, aborted, timed_out (GPU time of requests, by how they ended);
--              preempted, model_loading, unaccounted (GPU time no request owns); idle;
--              unmeasured (intervals that failed the input checks: seconds only, never
--              priced, no energy or carbon)
--   allocation attributed   the requests' own GPU time (the attribution kernel's split)
--              idle_policy  idle cost spread over the requests under the pricing file's
--                           idle policy (node, model or tenant): the same weights as
--                           request_costs.idle_share_usd, each GPU-hour's idle kept in its hour
--              unallocated  charged to no one (model, tenant and route NULL): idle under the
--                           'separate' policy or on a day with no requests in its scope, and
--                           the other buckets no request owns
--   cost_usd   GPU-seconds × the GPU's price per hour / 3600 + joules / 3.6e6 × PUE × $/kWh
--   carbon_g   joules / 3.6e6 × PUE × gCO2e/kWh: measured energy, idle included
CREATE OR REPLACE TEMP TABLE mart_spend AS
WITH attributed AS (
    SELECT a.hour, a.host_name, a.gpu_uuid, a.gpu_model, r.model, r.tenant, r.route,
           a.work_class AS bucket, sum(a.gpu_seconds) AS gpu_seconds, sum(a.energy_j) AS energy_j
    FROM int_attribution a JOIN int_requests r USING (request_uid)
    GROUP BY ALL
),
overhead AS (  -- gpu_time's buckets that no request owns, one row per GPU, hour and bucket
    SELECT hour, host_name, gpu_uuid, gpu_model, bucket, gpu_seconds, energy_j
    FROM (SELECT hour, host_name, gpu_uuid, gpu_model,
                 preempted_s, preempted_j, model_loading_s, model_loading_j,
                 unaccounted_s, unaccounted_j, idle_s, idle_j, unmeasured_s,
                 0.0 AS unmeasured_j
          FROM mart_gpu_time)
    UNPIVOT ((gpu_seconds, energy_j) FOR bucket IN (
        (preempted_s, preempted_j) AS preempted,
        (model_loading_s, model_loading_j) AS model_loading,
        (unaccounted_s, unaccounted_j) AS unaccounted,
        (idle_s, idle_j) AS idle,
        (unmeasured_s, unmeasured_j) AS unmeasured))
    WHERE gpu_seconds > 0
),
-- The idle policy's weights: which receivers (model, tenant, route) a GPU's idle on a day is
-- spread over, by their attributed cost that day — on the GPU's node ('node'), on the
-- models the GPU served, then over each model's requests ('model'), or everywhere ('tenant').
recv AS (
    SELECT date_trunc('day', a.hour) AS day, a.host_name, a.gpu_uuid, a.model, a.tenant,
           a.route,
           sum(a.gpu_seconds * p.usd_per_gpu_hour / 3600.0
               + a.energy_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh')) AS usd
    FROM attributed a LEFT JOIN pricing_gpu p USING (gpu_model)
    WHERE getvariable('idle_policy') <> 'separate'
    GROUP BY ALL
),
gpus AS (SELECT DISTINCT gpu_uuid, host_name FROM overhead WHERE bucket = 'idle'),
by_node AS (
    SELECT g.gpu_uuid, r.day, r.model, r.tenant, r.route, sum(r.usd) AS usd
    FROM gpus g JOIN recv r USING (host_name) GROUP BY ALL
),
everywhere AS (
    SELECT g.gpu_uuid, r.day, r.model, r.tenant, r.route, sum(r.usd) AS usd
    FROM gpus g, recv r GROUP BY ALL
),
gpu_model_share AS (  -- a model's part of one GPU's day
    SELECT gpu_uuid, day, model,
           sum(usd) / nullif(sum(sum(usd)) OVER (PARTITION BY gpu_uuid, day), 0) AS w
    FROM recv GROUP BY gpu_uuid, day, model
),
model_receivers AS (  -- a receiver's part of its model's day
    SELECT day, model, tenant, route,
           sum(usd) / nullif(sum(sum(usd)) OVER (PARTITION BY day, model), 0) AS w
    FROM recv GROUP BY day, model, tenant, route
),
weights AS (
    SELECT gpu_uuid, day, model, tenant, route,
           usd / nullif(sum(usd) OVER (PARTITION BY gpu_uuid, day), 0) AS w
    FROM by_node WHERE getvariable('idle_policy') = 'node'
    UNION ALL
    SELECT gpu_uuid, day, model, tenant, route,
           usd / nullif(sum(usd) OVER (PARTITION BY gpu_uuid, day), 0)
    FROM everywhere WHERE getvariable('idle_policy') = 'tenant'
    UNION ALL
    SELECT s.gpu_uuid, s.day, s.model, m.tenant, m.route, s.w * m.w
    FROM gpu_model_share s
    JOIN model_receivers m ON m.day = s.day AND m.model IS NOT DISTINCT FROM s.model
    WHERE getvariable('idle_policy') = 'model'
),
idle AS (SELECT *, date_trunc('day', hour) AS day FROM overhead WHERE bucket = 'idle'),
shared AS (
    SELECT i.hour, i.host_name, i.gpu_uuid, i.gpu_model, w.model, w.tenant, w.route,
           'idle' AS bucket, 'idle_policy' AS allocation,
           i.gpu_seconds * w.w AS gpu_seconds, i.energy_j * w.w AS energy_j
    FROM idle i JOIN weights w USING (gpu_uuid, day)
    WHERE w.w > 0
),
ledger AS (
    SELECT *, 'attributed' AS allocation FROM attributed
    UNION ALL BY NAME
    SELECT * FROM shared
    UNION ALL BY NAME
    SELECT o.*, 'unallocated' AS allocation FROM overhead o
    WHERE o.bucket <> 'idle'
       OR NOT EXISTS (SELECT 1 FROM weights w WHERE w.gpu_uuid = o.gpu_uuid
                      AND w.day = date_trunc('day', o.hour) AND w.w > 0)
)
SELECT
    l.hour, l.host_name, l.gpu_uuid, l.gpu_model, l.model, l.tenant, l.route, l.bucket,
    l.allocation, coalesce(s.simulated, false) AS simulated,
    l.gpu_seconds, l.energy_j,
    CASE WHEN l.bucket = 'unmeasured' THEN 0.0
         ELSE l.gpu_seconds * p.usd_per_gpu_hour / 3600.0
              + l.energy_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh') END
                                                                              AS cost_usd,
    l.energy_j / 3.6e6 * getvariable('pue') * getvariable('gco2e_per_kwh')    AS carbon_g,
    getvariable('pricing_version')                                            AS pricing_version,
    getvariable('idle_policy')                                                AS idle_policy
FROM ledger l
LEFT JOIN pricing_gpu p USING (gpu_model)
LEFT JOIN (SELECT gpu_uuid, bool_or(simulated) AS simulated FROM int_gpu_intervals
           GROUP BY gpu_uuid) s USING (gpu_uuid);
