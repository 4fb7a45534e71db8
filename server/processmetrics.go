package server

import (
	"bytes"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// family is the metadata of a metric family: its Prometheus type and help.
type family struct {
	typ, help string
}

// processFamilies describes the Go runtime and process families that
// VictoriaMetrics/metrics writes (v1.45, Linux). It writes them without
// HELP and TYPE lines unless its process-wide ExposeMetadata switch is on,
// and even then with empty help, so parsers and promlint read them as
// untyped; fastingest annotates them itself instead (writeProcessMetrics).
// The types are what the values are, not what the library says: it writes
// the process_io_*_total counters as gauges. go_cgo_calls_count,
// go_gc_forced_count (counters) and go_cpu_count (a gauge) end in _count,
// which promlint reserves for histograms and summaries; they keep the
// library's names, which dashboards built for it use.
var processFamilies = map[string]family{
	"go_sched_latencies_seconds":          {"histogram", "Time goroutines spent runnable before running (runtime/metrics /sched/latencies:seconds); waits over 1 s are counted in +Inf only. No _sum or _count: the runtime gives no exact sum."},
	"go_mutex_wait_seconds_total":         {"counter", "Time goroutines spent blocked on sync.Mutex, sync.RWMutex or runtime-internal locks (/sync/mutex/wait/total:seconds)."},
	"go_gc_mark_assist_cpu_seconds_total": {"counter", "CPU time goroutines spent on GC assists (/cpu/classes/gc/mark/assist:cpu-seconds)."},
	"go_gc_cpu_seconds_total":             {"counter", "CPU time spent on garbage collection (/cpu/classes/gc/total:cpu-seconds)."},
	"go_gc_pauses_seconds":                {"histogram", "Stop-the-world pauses of the garbage collector (/gc/pauses:seconds); pauses over 1 s are counted in +Inf only. No _sum or _count: the runtime gives no exact sum."},
	"go_scavenge_cpu_seconds_total":       {"counter", "CPU time spent returning memory to the OS (/cpu/classes/scavenge/total:cpu-seconds)."},
	"go_memlimit_bytes":                   {"gauge", "Memory limit of the Go runtime (GOMEMLIMIT; math.MaxInt64 when unset)."},
	"go_memstats_alloc_bytes":             {"gauge", "Bytes of allocated heap objects (runtime.MemStats.Alloc)."},
	"go_memstats_alloc_bytes_total":       {"counter", "Bytes allocated for heap objects since the process started (TotalAlloc)."},
	"go_memstats_buck_hash_sys_bytes":     {"gauge", "Bytes of memory in profiling bucket hash tables (BuckHashSys)."},
	"go_memstats_frees_total":             {"counter", "Heap objects freed since the process started (Frees)."},
	"go_memstats_gc_cpu_fraction":         {"gauge", "Fraction of the available CPU time the garbage collector used since the process started (GCCPUFraction)."},
	"go_memstats_gc_sys_bytes":            {"gauge", "Bytes of memory in garbage collection metadata (GCSys)."},
	"go_memstats_heap_alloc_bytes":        {"gauge", "Bytes of allocated heap objects (HeapAlloc)."},
	"go_memstats_heap_idle_bytes":         {"gauge", "Bytes in idle heap spans (HeapIdle)."},
	"go_memstats_heap_inuse_bytes":        {"gauge", "Bytes in in-use heap spans (HeapInuse)."},
	"go_memstats_heap_objects":            {"gauge", "Allocated heap objects (HeapObjects)."},
	"go_memstats_heap_released_bytes":     {"gauge", "Bytes of physical memory returned to the OS (HeapReleased)."},
	"go_memstats_heap_sys_bytes":          {"gauge", "Bytes of heap memory obtained from the OS (HeapSys)."},
	"go_memstats_last_gc_time_seconds":    {"gauge", "When the last garbage collection finished, in seconds since the Unix epoch; 0 before the first (LastGC)."},
	"go_memstats_lookups_total":           {"counter", "Pointer lookups performed by the runtime (Lookups)."},
	"go_memstats_mallocs_total":           {"counter", "Heap objects allocated since the process started (Mallocs)."},
	"go_memstats_mcache_inuse_bytes":      {"gauge", "Bytes of allocated mcache structures (MCacheInuse)."},
	"go_memstats_mcache_sys_bytes":        {"gauge", "Bytes of memory obtained from the OS for mcache structures (MCacheSys)."},
	"go_memstats_mspan_inuse_bytes":       {"gauge", "Bytes of allocated mspan structures (MSpanInuse)."},
	"go_memstats_mspan_sys_bytes":         {"gauge", "Bytes of memory obtained from the OS for mspan structures (MSpanSys)."},
	"go_memstats_next_gc_bytes":           {"gauge", "Heap size the next garbage collection aims at (NextGC)."},
	"go_memstats_other_sys_bytes":         {"gauge", "Bytes of memory in miscellaneous off-heap runtime allocations (OtherSys)."},
	"go_memstats_stack_inuse_bytes":       {"gauge", "Bytes in stack spans (StackInuse)."},
	"go_memstats_stack_sys_bytes":         {"gauge", "Bytes of stack memory obtained from the OS (StackSys)."},
	"go_memstats_sys_bytes":               {"gauge", "Bytes of memory obtained from the OS in all (Sys)."},
	"go_cgo_calls_count":                  {"counter", "Calls from Go to C made by the process (runtime.NumCgoCall)."},
	"go_cpu_count":                        {"gauge", "Logical CPUs usable by the process (runtime.NumCPU)."},
	"go_gc_duration_seconds":              {"summary", "Stop-the-world pauses of the garbage collector: quantiles over the last 256 pauses, _sum over all pauses, _count the number of collections."},
	"go_gc_forced_count":                  {"counter", "Garbage collections forced by calls to runtime.GC (NumForcedGC)."},
	"go_gomaxprocs":                       {"gauge", "Threads that may execute Go code at once (GOMAXPROCS)."},
	"go_goroutines":                       {"gauge", "Goroutines that exist now."},
	"go_threads":                          {"gauge", "OS threads the Go runtime has created."},
	"go_info":                             {"gauge", "Always 1; the version label is the Go version the binary was built with."},
	"go_info_ext":                         {"gauge", "Always 1; the labels are the compiler, GOARCH, GOOS and GOROOT the binary was built with."},

	"process_cpu_seconds_system_total":              {"counter", "CPU time the process spent in the kernel."},
	"process_cpu_seconds_total":                     {"counter", "CPU time the process spent, user and kernel."},
	"process_cpu_seconds_user_total":                {"counter", "CPU time the process spent in user mode."},
	"process_major_pagefaults_total":                {"counter", "Page faults of the process that read from disk."},
	"process_minor_pagefaults_total":                {"counter", "Page faults of the process served without reading from disk."},
	"process_num_threads":                           {"gauge", "OS threads of the process."},
	"process_resident_memory_bytes":                 {"gauge", "Resident memory of the process (RSS)."},
	"process_start_time_seconds":                    {"gauge", "When the process started, in seconds since the Unix epoch."},
	"process_virtual_memory_bytes":                  {"gauge", "Virtual memory of the process."},
	"process_virtual_memory_peak_bytes":             {"gauge", "Peak virtual memory of the process (VmPeak)."},
	"process_resident_memory_peak_bytes":            {"gauge", "Peak resident memory of the process (VmHWM)."},
	"process_resident_memory_anon_bytes":            {"gauge", "Resident anonymous memory of the process: heap, stacks (RssAnon)."},
	"process_resident_memory_file_bytes":            {"gauge", "Resident file-backed memory of the process (RssFile)."},
	"process_resident_memory_shared_bytes":          {"gauge", "Resident shared memory of the process (RssShmem)."},
	"process_io_read_bytes_total":                   {"counter", "Bytes the process read with read-like system calls, sockets and page cache included (rchar)."},
	"process_io_written_bytes_total":                {"counter", "Bytes the process wrote with write-like system calls, sockets included (wchar)."},
	"process_io_read_syscalls_total":                {"counter", "Read-like system calls of the process (syscr)."},
	"process_io_write_syscalls_total":               {"counter", "Write-like system calls of the process (syscw)."},
	"process_io_storage_read_bytes_total":           {"counter", "Bytes the process had read from storage (read_bytes)."},
	"process_io_storage_written_bytes_total":        {"counter", "Bytes the process had written to storage (write_bytes)."},
	"process_pressure_cpu_waiting_seconds_total":    {"counter", "Time some tasks of the process's cgroup waited for a CPU, since the process started (PSI cpu some)."},
	"process_pressure_cpu_stalled_seconds_total":    {"counter", "Time all tasks of the process's cgroup waited for a CPU, since the process started (PSI cpu full)."},
	"process_pressure_io_waiting_seconds_total":     {"counter", "Time some tasks of the process's cgroup waited for I/O, since the process started (PSI io some)."},
	"process_pressure_io_stalled_seconds_total":     {"counter", "Time all tasks of the process's cgroup waited for I/O, since the process started (PSI io full)."},
	"process_pressure_memory_waiting_seconds_total": {"counter", "Time some tasks of the process's cgroup waited for memory, since the process started (PSI memory some)."},
	"process_pressure_memory_stalled_seconds_total": {"counter", "Time all tasks of the process's cgroup waited for memory, since the process started (PSI memory full)."},
	"process_cgroup_cpu_throttled_seconds_total":    {"counter", "Time the process's cgroup was throttled by its CPU limit, since the process started."},
	"process_max_fds":                               {"gauge", "Most file descriptors the process may open (soft RLIMIT_NOFILE)."},
	"process_open_fds":                              {"gauge", "File descriptors the process has open."},
}

// unknownFamilyHelp is the help of a family processFamilies does not know
// (another OS, a newer library): typed by its name, so that the exposition
// stays valid; TestExposition fails on one on Linux.
const unknownFamilyHelp = "Written by VictoriaMetrics/metrics; fastingest does not describe it."

// writeProcessMetrics writes the Go runtime and process metrics, open and
// most file descriptors included, each family with HELP and TYPE lines.
// It sets no process-wide switch (ExposeMetadata), so that it holds
// whatever else runs in the process; VictoriaMetrics' own metadata lines,
// if something turned that switch on, are replaced by fastingest's.
func writeProcessMetrics(w io.Writer) {
	var b bytes.Buffer
	metrics.WriteProcessMetrics(&b)
	metrics.WriteFDMetrics(&b) // not in WriteProcessMetrics: costly with many descriptors
	annotate(w, b.Bytes(), processFamilies)
}

// annotate copies the samples of a Prometheus text exposition to w, each
// family preceded by HELP and TYPE lines from families, and drops its
// comment lines. A family's samples must be contiguous, as
// VictoriaMetrics/metrics writes them.
func annotate(w io.Writer, exposition []byte, families map[string]family) {
	var out bytes.Buffer
	prev := ""
	for line := range bytes.Lines(exposition) {
		line = bytes.TrimRight(line, "\n")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, f := familyOf(line, families)
		if name != prev {
			prev = name
			out.WriteString("# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.typ + "\n")
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	_, _ = w.Write(out.Bytes())
}

// familyOf returns the family a sample line belongs to: its metric name, or
// for a histogram's or summary's _bucket, _sum and _count lines the name
// without the suffix.
func familyOf(line []byte, families map[string]family) (string, family) {
	end := bytes.IndexAny(line, "{ ")
	if end < 0 {
		end = len(line)
	}
	name := string(line[:end])
	if f, ok := families[name]; ok {
		return name, f
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := families[base]; ok && (f.typ == "histogram" || f.typ == "summary") {
			return base, f
		}
	}
	if strings.HasSuffix(name, "_total") {
		return name, family{"counter", unknownFamilyHelp}
	}
	return name, family{"gauge", unknownFamilyHelp}
}
