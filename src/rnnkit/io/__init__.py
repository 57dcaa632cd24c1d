"""Files: safetensors reading and writing, atomic writes, and model save/load."""
