-- The window's worst conservation errors, worst first: a run stops when the first exceeds
-- the tolerance, naming these.
SELECT gpu_uuid, hour, rel_error_s, rel_error_j, greatest(rel_error_s, rel_error_j) AS rel_error
FROM mart_conservation
ORDER BY rel_error DESC NULLS LAST
LIMIT 3
