--! publish: node_power
--! day_key: epoch(hour)
-- mart_node_power: per node and hour, the node's power against the sum of its GPUs'
-- limits. A node's GPUs are sampled at their own instants: each GPU's power is averaged over
-- the same 10-second bins, then the node's GPUs are summed bin by bin (summing the samples
-- that happen to share a rounded second would count one GPU or three); only bins where
-- every GPU of the node reported count.
CREATE OR REPLACE TEMP TABLE mart_node_power AS
WITH per_gpu AS (
    SELECT host_name, gpu_uuid, floor(ts_s / 10) AS bin, avg(power_w) AS power_w,
           max(power_limit_w) AS limit_w
    FROM stg_gpu_samples GROUP BY ALL
), per_node AS (
    SELECT host_name, bin, sum(power_w) AS power_w, sum(limit_w) AS limit_w,
           count(*) AS gpus
    FROM per_gpu GROUP BY ALL
), full_bins AS (
    SELECT * FROM per_node
    WHERE gpus = (SELECT max(gpus) FROM per_node m WHERE m.host_name = per_node.host_name)
)
SELECT host_name, date_trunc('hour', to_timestamp(bin * 10)) AS hour, count(*) AS bins,
       avg(power_w) AS mean_power_w, max(power_w) AS peak_power_w, max(limit_w) AS limit_w
FROM full_bins GROUP BY ALL;
