// A separate process that publishes through a client with fileStorage, for tests that kill it with
// SIGKILL (a crash or a closed laptop, not a polite close()).
// Usage: node --conditions=source --import tsx durable-publisher.ts <dir> <ws url> <count> <channel>
// Prints "issued" once every publish call is made; each later line is "acked <n>".
import { WebSocket } from 'ws'
import { fileStorage, HoldfastClient } from '../../src/index.js'

const [dir, url, countText, channel] = process.argv.slice(2)
if (dir === undefined || url === undefined || countText === undefined || channel === undefined) throw new Error('usage: durable-publisher <dir> <url> <count> <channel>')
const client = new HoldfastClient(url, {
  WebSocket,
  storage: fileStorage(dir),
  minReconnectDelayMs: 20,
  maxReconnectDelayMs: 100,
  commandTimeoutMs: 120_000,
})
client.on('error', (e) => process.stderr.write(`client error: ${e.code} ${e.message}\n`))
client.connect()
for (let n = 1; n <= Number(countText); n++) {
  client.publish(channel, { n }).then(
    () => process.stdout.write(`acked ${n}\n`),
    (e: Error) => process.stdout.write(`failed ${n} ${e.message}\n`),
  )
}
process.stdout.write('issued\n')
