"""Host metrics through psutil: CPU, memory, load, filesystems, disk and network I/O, uptime."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# Pseudo and runtime mounts, and what a container manager binds in from the machine
# (systemd-nspawn's /run/host): not the host's own storage.
IGNORED_MOUNTS = re.compile(r"^/(dev|proc|sys|run/host|run/credentials)(/|$)")

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


class HostCollector:
    def __init__(self, ignored_fs_types: tuple[str, ...] = ()) -> None:
        self.ignored_fs_types = set(ignored_fs_types)

    def collect(self) -> Iterator[Metric]:
        yield from self._cpu()
        yield from self._memory()
        yield from self._load()
        yield from self._filesystems()
        yield from self._disks()
        yield from self._network()
        yield from self._boot()

    def _boot(self) -> Iterator[Metric]:
        boot = GaugeMetricFamily("opsctl_host_boot_time_seconds",
                                 "Unix time the host booted.")
        boot.add_metric([], psutil.boot_time())
        yield boot

    def _cpu(self) -> Iterator[Metric]:
        times = psutil.cpu_times()
        cpu = CounterMetricFamily("opsctl_host_cpu_seconds",
                                  "CPU time spent in each mode, all CPUs summed.",
                                  labels=["mode"])
        for mode in CPU_MODES:
            if hasattr(times, mode):
                cpu.add_metric([mode], getattr(times, mode))
        yield cpu
        count = GaugeMetricFamily("opsctl_host_cpus", "Logical CPUs.")
        count.add_metric([], psutil.cpu_count() or 0)
        yield count

    def _memory(self) -> Iterator[Metric]:
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        for name, help_text, value in (
            ("opsctl_host_memory_total_bytes", "Physical memory.", memory.total),
            ("opsctl_host_memory_available_bytes",
             "Memory available to start new work without swapping.", memory.available),
            ("opsctl_host_swap_total_bytes", "Swap space.", swap.total),
            ("opsctl_host_swap_free_bytes", "Unused swap space.", swap.free),
        ):
            family = GaugeMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family

    def _load(self) -> Iterator[Metric]:
        for minutes, value in zip((1, 5, 15), os.getloadavg(), strict=True):
            family = GaugeMetricFamily(f"opsctl_host_load{minutes}",
                                       f"Load average over {minutes} minute(s).")
            family.add_metric([], value)
            yield family

    def _filesystems(self) -> Iterator[Metric]:
        labels = ["mountpoint", "device", "fstype"]
        size = GaugeMetricFamily("opsctl_host_filesystem_size_bytes", "Filesystem size.",
                                 labels=labels)
        avail = GaugeMetricFamily("opsctl_host_filesystem_avail_bytes",
                                  "Filesystem space available to unprivileged users.",
                                  labels=labels)
        files = GaugeMetricFamily("opsctl_host_filesystem_files", "Filesystem inodes.",
                                  labels=labels)
        files_free = GaugeMetricFamily("opsctl_host_filesystem_files_free",
                                       "Free filesystem inodes.", labels=labels)
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=True):
            if (part.fstype in self.ignored_fs_types or part.mountpoint in seen
                    or IGNORED_MOUNTS.match(part.mountpoint)):
                continue
            seen.add(part.mountpoint)
            try:
                stat = os.statvfs(part.mountpoint)
            except OSError:
                continue
            if stat.f_blocks == 0:
                continue
            values = [part.mountpoint, part.device, part.fstype]
            size.add_metric(values, stat.f_blocks * stat.f_frsize)
            avail.add_metric(values, stat.f_bavail * stat.f_frsize)
            files.add_metric(values, stat.f_files)
            files_free.add_metric(values, stat.f_ffree)
        yield from (size, avail, files, files_free)

    def _disks(self) -> Iterator[Metric]:
        # The kernel's own counters, as read: Prometheus takes a reset as a reset. psutil's nowrap
        # would add what it saw before to a counter that went down (a device or interface made
        # again), inventing traffic.
        counters = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
        read = CounterMetricFamily("opsctl_host_disk_read_bytes", "Bytes read.",
                                   labels=["device"])
        written = CounterMetricFamily("opsctl_host_disk_written_bytes", "Bytes written.",
                                      labels=["device"])
        busy = CounterMetricFamily("opsctl_host_disk_io_time_seconds",
                                   "Time the device was busy with I/O.", labels=["device"])
        for device, c in sorted(counters.items()):
            read.add_metric([device], c.read_bytes)
            written.add_metric([device], c.write_bytes)
            busy.add_metric([device], getattr(c, "busy_time", 0) / 1000)
        yield from (read, written, busy)

    def _network(self) -> Iterator[Metric]:
        counters = psutil.net_io_counters(pernic=True, nowrap=False) or {}  # see _disks
        received = CounterMetricFamily("opsctl_host_network_receive_bytes", "Bytes received.",
                                       labels=["device"])
        sent = CounterMetricFamily("opsctl_host_network_transmit_bytes", "Bytes sent.",
                                   labels=["device"])
        errors = CounterMetricFamily("opsctl_host_network_errors",
                                     "Receive and transmit errors.", labels=["device"])
        for device, c in sorted(counters.items()):
            if device == "lo":
                continue
            received.add_metric([device], c.bytes_recv)
            sent.add_metric([device], c.bytes_sent)
            errors.add_metric([device], c.errin + c.errout)
        yield from (received, sent, errors)
