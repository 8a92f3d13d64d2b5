-- The free-form host detail the agent reports (Nova's compute_nodes.cpu_info, a JSON text):
-- for QEMU hosts it names the accelerator guests run with.
ALTER TABLE nv_compute_nodes ADD COLUMN cpu_info {text}
