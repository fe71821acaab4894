"""The CPU's feature flags from /proc/cpuinfo (x86 Linux), for the tests of the kernels that need one."""


def cpu_flags():
    """The flags of the first CPU listed, or None where /proc/cpuinfo has none (not Linux, not x86)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
