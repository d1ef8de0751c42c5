-- Prompt tokens an engine recomputed after preempting requests, per GPU and interval.
SELECT hash(gpu_uuid) AS gpu_idx, t0, t1, tokens FROM int_recompute
