/**
 * The engine's control messages, published by any node of the fleet and acted on by the node that
 * holds the connections concerned: a session taken over elsewhere, a disconnect, a server-side
 * subscribe or unsubscribe of a user, a `message` push to a user or a connection.
 */
import { ConnState } from './connection.js'
import type { ControlMessage } from './engine/engine.js'
import type { NodeContext } from './node-context.js'
import type { Subscriptions } from './subscriptions.js'

export function handleControl(ctx: Pick<NodeContext, 'connections' | 'bySession'>, subscriptions: Subscriptions, msg: ControlMessage): void {
  switch (msg.type) {
    case 'takeover': {
      const conn = ctx.bySession.get(msg.session)
      if (conn !== undefined && conn.id !== msg.client) conn.close('taken_over', 'session resumed by a newer connection')
      return
    }
    case 'disconnect': {
      const code = msg.code
      for (const conn of [...ctx.connections]) {
        if ((msg.client !== undefined && conn.id === msg.client) || (msg.user !== undefined && conn.user === msg.user && conn.state === ConnState.Connected)) {
          conn.closeWith(code, msg.reason)
        }
      }
      return
    }
    case 'subscribe': {
      for (const conn of ctx.connections) {
        if (conn.user === msg.user && conn.state === ConnState.Connected) void subscriptions.serverSubscribe(conn, msg.channel)
      }
      return
    }
    case 'unsubscribe': {
      for (const conn of ctx.connections) {
        if (conn.user === msg.user && conn.subs?.has(msg.channel) === true) subscriptions.unsubscribe(conn, msg.channel, 'kicked', 'unsubscribed by the server')
      }
      return
    }
    case 'message': {
      for (const conn of ctx.connections) {
        if (conn.state === ConnState.Connected && ((msg.client !== undefined && conn.id === msg.client) || (msg.user !== undefined && conn.user === msg.user))) {
          conn.send({ type: 'message', data: msg.data })
        }
      }
      return
    }
  }
}
