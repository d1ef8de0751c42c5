-- The time range of the new spans and of the samples received after $after (ns).
SELECT least((SELECT min(t0) FROM new_spans), min(time_unix_nano)),
       greatest((SELECT max(t1) FROM new_spans), max(time_unix_nano))
FROM raw_metric_points
WHERE received_at_unix_nano > $after
