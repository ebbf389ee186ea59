// Kernel memory per idle TCP socket, for README's sizing model.
//
//   node bench/kernel-per-socket.js [--sockets 5000] [--rounds 5]
//
// Opens N idle loopback TCP connections (both ends in this process, source
// addresses spread over 127.0.0.x), and reads the kernel's slab memory
// (/proc/meminfo `Slab:`: socket, inode, file, dentry and epoll objects)
// before and after; the growth divided by 2N is one end's share. Other
// processes allocate slab memory too, so each round is repeated and the
// median printed with the range. Linux only; loopback only; bounded.
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'

const { values } = parseArgs({ options: { sockets: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '5' } } })
const sockets = Number(values.sockets)
const rounds = Number(values.rounds)
if (!Number.isInteger(sockets) || sockets < 100 || sockets > 20_000) throw new Error('--sockets: an integer from 100 to 20000')
setTimeout(() => { console.error('kernel-per-socket: not done within 120 s'); process.exit(1) }, 120_000).unref()

const slabBytes = () => Number(/Slab:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) * 1024
const server = net.createServer(() => {})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const { port } = server.address()

const perEnd = []
for (let round = 0; round < rounds; round++) {
  const before = slabBytes()
  const open = []
  for (let index = 0; index < sockets; index++) {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (index % 50)}` })
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    open.push(socket)
  }
  await sleep(500)
  perEnd.push((slabBytes() - before) / (2 * sockets))
  for (const socket of open) socket.destroy()
  await sleep(1000)
}
server.close()
perEnd.sort((a, b) => a - b)
const median = perEnd[Math.floor(perEnd.length / 2)]
console.log(`kernel slab per idle TCP socket end, ${sockets} connections × ${rounds} rounds: median ${Math.round(median)} B (${Math.round(perEnd[0])}–${Math.round(perEnd.at(-1))})`)
