-- Which GPUs each request ran on (a row per GPU of a tensor-parallel request).
SELECT req_idx, gpu_idx FROM int_placements
