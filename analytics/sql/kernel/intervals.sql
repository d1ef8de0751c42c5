-- The kernel's GPU intervals: checked ones only (quarantined time is unmeasured, not shared).
-- A GPU's key is the hash of its UUID, as in int_attribution_inputs.
SELECT hash(gpu_uuid) AS gpu_idx, t0, t1, measured_s, measured_j, utilization,
       epoch(hour)::BIGINT AS "window"
FROM int_gpu_intervals
WHERE quarantine_reason IS NULL
