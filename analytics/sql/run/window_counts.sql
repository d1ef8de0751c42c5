-- What a window computed, for the run's report: requests that started in it, GPU intervals
-- that began in it.
SELECT (SELECT count(*) FROM int_requests WHERE started_s >= $lo AND started_s < $hi),
       (SELECT count(*) FROM int_gpu_intervals WHERE t0 >= $lo AND t0 < $hi)
