import { spawnSync } from 'node:child_process'
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'

/**
 * A CPU share per process, for the scale-out scenario: each replica gets e.g. a quarter of a core,
 * as a Kubernetes CPU limit would give it, so that N replicas on one machine behave like N small
 * pods. Tried in order:
 *  - cgroup v2: a group per process under /sys/fs/cgroup with `cpu.max` = "<quota> 100000";
 *  - cgroup v1: a group per process under /sys/fs/cgroup/cpu with `cpu.cfs_quota_us`;
 *  - taskset: every limited process pinned to CPU 0 (they share one core; no quota);
 *  - none: nothing can be limited (reported as such).
 * `method` says which one was used; groups are removed by close() (once their processes are gone).
 */
export type LimitMethod = 'cgroup v2' | 'cgroup v1' | 'taskset' | 'none'

export interface CpuLimits {
  readonly method: LimitMethod
  /** Limits process `pid` (every thread) to `share` of one CPU (0 < share ≤ 1). */
  limit(pid: number, share: number): Promise<void>
  close(): Promise<void>
}

const PERIOD_US = 100_000
const V2_ROOT = '/sys/fs/cgroup'
const V1_ROOT = '/sys/fs/cgroup/cpu'

async function exists(path: string): Promise<boolean> {
  return await access(path).then(
    () => true,
    () => false,
  )
}

/** Creates one probe group with the controller's quota file in it; true when it can be written. */
async function usable(root: string, quotaFile: string): Promise<boolean> {
  const probe = `${root}/gatehouse-bench-probe-${process.pid}`
  try {
    await mkdir(probe)
  } catch {
    return false
  }
  try {
    return await exists(`${probe}/${quotaFile}`)
  } finally {
    await rmdir(probe).catch(() => undefined)
  }
}

export async function cpuLimits(): Promise<CpuLimits> {
  const groups: string[] = []
  let n = 0
  const group = async (root: string): Promise<string> => {
    const dir = `${root}/gatehouse-bench-${process.pid}-${n++}`
    await mkdir(dir)
    groups.push(dir)
    return dir
  }
  const close = async (): Promise<void> => {
    for (const dir of groups.splice(0).reverse()) await rmdir(dir).catch(() => undefined)
  }
  const v2 = (await readFile(`${V2_ROOT}/cgroup.controllers`, 'utf8').catch(() => '')).split(/\s+/).includes('cpu')
  if (v2) {
    // Children of the root get the cpu controller only when the root's subtree enables it.
    await writeFile(`${V2_ROOT}/cgroup.subtree_control`, '+cpu').catch(() => undefined)
    if (await usable(V2_ROOT, 'cpu.max')) {
      return {
        method: 'cgroup v2',
        async limit(pid, share) {
          const dir = await group(V2_ROOT)
          await writeFile(`${dir}/cpu.max`, `${Math.round(share * PERIOD_US)} ${PERIOD_US}`)
          await writeFile(`${dir}/cgroup.procs`, String(pid))
        },
        close,
      }
    }
  }
  if (await usable(V1_ROOT, 'cpu.cfs_quota_us')) {
    return {
      method: 'cgroup v1',
      async limit(pid, share) {
        const dir = await group(V1_ROOT)
        await writeFile(`${dir}/cpu.cfs_period_us`, String(PERIOD_US))
        await writeFile(`${dir}/cpu.cfs_quota_us`, String(Math.round(share * PERIOD_US)))
        // cgroup.procs moves the whole thread group (libuv's pool too).
        await writeFile(`${dir}/cgroup.procs`, String(pid))
      },
      close,
    }
  }
  if (spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0) {
    return {
      method: 'taskset',
      async limit(pid) {
        spawnSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' })
      },
      close,
    }
  }
  return { method: 'none', limit: async () => undefined, close }
}

/** Seconds the process spent throttled by its quota so far (cgroups only; 0 otherwise). */
export async function throttledSeconds(pid: number): Promise<number> {
  const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '')
  const v1 = /^\d+:(?:[^:]*,)?cpu(?:,[^:]*)?:(.+)$/m.exec(cg)?.[1]
  const v2 = /^0::(.+)$/m.exec(cg)?.[1]
  const stat = v1 !== undefined && v1 !== '/' ? await readFile(`${V1_ROOT}${v1}/cpu.stat`, 'utf8').catch(() => '') : v2 !== undefined && v2 !== '/' ? await readFile(`${V2_ROOT}${v2}/cpu.stat`, 'utf8').catch(() => '') : ''
  const ns = /throttled_time (\d+)/.exec(stat)?.[1]
  const us = /throttled_usec (\d+)/.exec(stat)?.[1]
  return ns !== undefined ? Number(ns) / 1e9 : us !== undefined ? Number(us) / 1e6 : 0
}
