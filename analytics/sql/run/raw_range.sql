-- The raw store's time range and its newest receipt (from Parquet statistics), in ns.
SELECT least(min(s.lo), min(m.lo)), greatest(max(s.hi), max(m.hi)), greatest(max(s.r), max(m.r))
FROM (SELECT min(start_time_unix_nano) lo, max(end_time_unix_nano) hi,
             max(received_at_unix_nano) r FROM raw_spans) s,
     (SELECT min(time_unix_nano) lo, max(time_unix_nano) hi,
             max(received_at_unix_nano) r FROM raw_metric_points) m
