// Loaded into a server with --import by bench/connect-cost.js --allocations:
// the first SIGUSR2 starts V8's sampling heap profiler, counting objects
// that are collected again too (what a connect allocates, not what it keeps),
// the second stops it and writes the profile to ALLOCATION_PROFILE.
import { Session } from 'node:inspector'
import { renameSync, writeFileSync } from 'node:fs'

const session = new Session()
session.connect()
const post = (method, params) => new Promise((resolve, reject) => {
  session.post(method, params, (error, result) => error ? reject(error) : resolve(result))
})

let sampling = false
process.on('SIGUSR2', () => {
  const toggle = sampling
    ? post('HeapProfiler.stopSampling').then(({ profile }) => {
      // Whole or not at all: the reader waits for the file to appear.
      const path = process.env.ALLOCATION_PROFILE
      writeFileSync(`${path}.part`, JSON.stringify(profile))
      renameSync(`${path}.part`, path)
    })
    : post('HeapProfiler.enable').then(() => post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    }))
  sampling = !sampling
  toggle.catch((error) => console.error('allocation sampler:', error))
})
