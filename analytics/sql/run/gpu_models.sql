-- The GPU models the window's intervals ran on: each is priced from the pricing file.
SELECT DISTINCT gpu_model FROM int_gpu_intervals WHERE gpu_model IS NOT NULL ORDER BY 1
