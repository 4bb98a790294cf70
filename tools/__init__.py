"""The probe tools, the probe engine (trials) and the workloads."""
