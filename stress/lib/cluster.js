// Two (or more) gateway nodes of one deployment, each a child process
// (stress/node.js) on the same Redis and key prefix.
import { Child } from '../../bench/lib/children.js'

const script = new URL('../node.js', import.meta.url).pathname

export class Cluster {
  constructor (nodes) {
    this.nodes = nodes
  }

  /** `count` nodes `node-0`…; `options` as stress/node.js takes them (redis, keyPrefix, heartbeatMs, history, limits). */
  static async start (count, options) {
    const nodes = []
    for (let index = 0; index < count; index++) {
      const nodeId = `node-${index}`
      const child = new Child(script, [JSON.stringify({ ...options, nodeId })], { name: nodeId })
      const { port } = await child.ready()
      nodes.push({ id: nodeId, child, port, alive: true })
    }
    return new Cluster(nodes)
  }

  /** The WebSocket URL of node `index`. */
  url (index) {
    return `ws://127.0.0.1:${this.nodes[index].port}/api/v1/ws`
  }

  /** SIGKILL: the node dies without any cleanup. */
  async kill (index) {
    this.nodes[index].alive = false
    await this.nodes[index].child.kill()
  }

  /** The port a client whose home is `port` reaches: its own node while alive, else the next live one (a load balancer's failover). */
  route (port) {
    const home = this.nodes.findIndex((node) => node.port === port)
    if (home === -1 || this.nodes[home].alive) return port
    for (let step = 1; step < this.nodes.length; step++) {
      const node = this.nodes[(home + step) % this.nodes.length]
      if (node.alive) return node.port
    }
    return port
  }

  /** Every live node's answer to `cmd`. */
  async all (cmd) {
    return await Promise.all(this.nodes.filter((node) => node.alive).map((node) => node.child.request(cmd)))
  }

  async errors () {
    return (await this.all('errors')).flat()
  }

  async stop () {
    await Promise.all(this.nodes.filter((node) => node.alive).map((node) => node.child.stop()))
  }
}
