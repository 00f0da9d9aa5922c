"""What the benchmark reports say about the machine they ran on."""
import platform


def machine():
    """CPU model and memory, from /proc where it exists (Linux), else platform's guess."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        with open("/proc/meminfo") as f:
            kb = int(next(l.split()[1] for l in f if l.startswith("MemTotal")))
        name += f" ({platform.machine()}), {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return name
