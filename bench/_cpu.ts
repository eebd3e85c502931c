// CPU time of the benchmark's processes, from /proc (Linux): utime + stime of a process (all its
// threads), of its main thread, and of a whole PostgreSQL cluster. Everything in microseconds;
// null where /proc is not readable (another OS), so the benchmark still runs and prints "–".
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const TICK_US = (() => {
  try {
    return 1e6 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  } catch {
    return 1e4; // 100 ticks per second, Linux's usual
  }
})();

/** The fields after `pid (comm) `: [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime. */
function statFields(path: string): string[] | null {
  try {
    const text = readFileSync(path, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** CPU a process has used so far, all threads; with `reaped`, also its waited-for children's. */
export function processCpu(pid: number, reaped = false): number | null {
  const f = statFields(`/proc/${pid}/stat`);
  if (!f) return null;
  const ticks = Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0);
  return ticks * TICK_US;
}

/** CPU of a process's main thread (the event loop, for Node), without its worker threads. */
export function mainThreadCpu(pid: number): number | null {
  const f = statFields(`/proc/${pid}/task/${pid}/stat`);
  return f ? (Number(f[11]) + Number(f[12])) * TICK_US : null;
}

export function parentOf(pid: number): number | null {
  const f = statFields(`/proc/${pid}/stat`);
  return f ? Number(f[1]) : null;
}

/** Live processes whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  return names.filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => parentOf(pid) === ppid);
}

/** The first live child of `ppid` whose command line contains `needle`. */
export function findChild(ppid: number, needle: string): number | null {
  for (const pid of childrenOf(ppid)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle)) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return null;
}

/**
 * All CPU a PostgreSQL cluster has used: the postmaster, its live children (backends, WAL
 * writer, checkpointer, autovacuum…) and the children it has reaped, so backends that exited
 * between two readings still count. Includes every other client of the same cluster.
 */
export function clusterCpu(postmaster: number): number | null {
  const own = processCpu(postmaster, true);
  if (own === null) return null;
  return childrenOf(postmaster).reduce((sum, pid) => sum + (processCpu(pid) ?? 0), own);
}

/** CPU of each of `pids` now, skipping any that has exited. */
export function cpuByPid(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    const cpu = processCpu(pid);
    if (cpu !== null) out.set(pid, cpu);
  }
  return out;
}

/**
 * CPU used between two readings of a set of processes: the increase of those alive at both, and
 * everything used by those born in between (their start-up included).
 */
export function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, cpu] of after) sum += cpu - (before.get(pid) ?? 0);
  return sum;
}
