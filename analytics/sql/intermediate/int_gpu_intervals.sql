--! publish: gpu_intervals
--! day_key: t0
-- int_gpu_intervals: the measured GPU time and energy between consecutive agent samples of
-- each GPU, checked before anything is priced.
-- Energy is the delta of NVML's cumulative counter; where the counter went backwards
-- (driver reload) or is missing, the trapezoid of the two power readings is used instead.
-- NVML's utilization is "over the past sample period", so the reading that closes the
-- interval (the next sample) is the one that describes it.
--
-- Checks: an interval that fails one is kept with its `quarantine_reason` and is never
-- attributed or priced (gpu_time books it as `unmeasured`), so measured = valid + quarantined:
--   two_sources        its two samples came from different agents (two agents reporting one
--                      GPU interleave their counters: deltas of different series)
--   time_backwards     an endpoint's timestamp is older than one its agent sent before it
--                      (a clock stepped back)
--   power_above_limit  its mean power exceeds the GPU's power limit × power_limit_margin
--   gap                it is longer than max_sample_gap_s (the agent was down)
CREATE OR REPLACE TEMP TABLE int_gpu_intervals AS
WITH ordered AS (
    SELECT *,
           -- older than a sample the same agent sent earlier: the clock went backwards
           ts_s < max(ts_s) OVER (PARTITION BY source, gpu_uuid ORDER BY received_at_unix_nano,
                                  ts_s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS backwards
    FROM stg_gpu_samples
),
s AS (
    SELECT
        lead(host_name) OVER w                           AS host_name,
        gpu_uuid, gpu_model, simulated,
        source,
        lead(source) OVER w                              AS source_next,
        backwards OR lead(backwards) OVER w              AS backwards,
        ts_s                                             AS t0,
        lead(ts_s) OVER w                                AS t1,
        energy_j,
        lead(energy_j) OVER w                            AS energy_next_j,
        power_w,
        lead(power_w) OVER w                             AS power_next_w,
        lead(utilization) OVER w                         AS utilization,
        coalesce(lead(power_limit_w) OVER w, power_limit_w) AS power_limit_w
    FROM ordered
    WINDOW w AS (PARTITION BY gpu_uuid ORDER BY ts_s, source)
),
m AS (
    SELECT
        host_name, gpu_uuid, gpu_model, simulated, t0, t1,
        t1 - t0                                          AS measured_s,
        CASE WHEN energy_next_j >= energy_j THEN energy_next_j - energy_j
             ELSE (coalesce(power_w, 0) + coalesce(power_next_w, power_w, 0)) / 2 * (t1 - t0)
        END                                              AS measured_j,
        CASE WHEN energy_next_j >= energy_j THEN 'counter' ELSE 'power_integral' END
                                                         AS energy_source,
        utilization, power_w, power_limit_w, source, source_next, backwards
    FROM s
    WHERE t1 IS NOT NULL AND t1 > t0
)
SELECT
    host_name, gpu_uuid, gpu_model, simulated, t0, t1, measured_s, measured_j, energy_source,
    utilization, power_w, power_limit_w,
    CASE WHEN source <> source_next THEN 'two_sources'
         WHEN backwards THEN 'time_backwards'
         WHEN measured_j / measured_s > power_limit_w * getvariable('power_limit_margin')
             THEN 'power_above_limit'
         WHEN measured_s > getvariable('max_sample_gap_s') THEN 'gap'
    END                                                  AS quarantine_reason,
    date_trunc('hour', to_timestamp(t0))                 AS hour
FROM m;
