"""What this machine offers langbuild: devices, memory, bf16 speed, packages, offline state, caches."""
