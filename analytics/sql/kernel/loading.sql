-- Engines loading their model, per GPU: that time is model_loading, not idle.
SELECT hash(gpu_uuid) AS gpu_idx, t0, t1 FROM int_engine_loading
