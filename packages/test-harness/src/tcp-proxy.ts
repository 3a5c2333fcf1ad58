import { createServer, connect, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of Redis whose gate the test opens and closes, so the
 * moment a client reconnects is the test's choice, not a race.
 */
export interface GatedProxy {
  readonly port: number
  open: boolean
  /** Drops every proxied connection. */
  cut(): void
  /**
   * Arms a one-shot cut at a chosen moment: the first chunk from the server containing `marker`
   * (e.g. a script's reply `reused`) is delivered to the client, then every proxied connection is
   * dropped, before the client can send anything after it. Resolves when the cut happened.
   */
  cutAfterReply(marker: string): Promise<void>
  close(): Promise<void>
}

export async function startProxy(targetPort: number): Promise<GatedProxy> {
  const sockets = new Set<Socket>()
  const state = { open: true }
  let armed: { marker: Buffer; fired: () => void } | undefined
  const cutAll = (): void => {
    for (const s of sockets) s.destroy()
    sockets.clear()
  }
  const server: Server = createServer((client) => {
    if (!state.open) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const drop = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop)
    upstream.on('error', drop)
    client.on('close', drop)
    upstream.on('close', drop)
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      const a = armed
      if (a !== undefined && chunk.includes(a.marker)) {
        armed = undefined
        // Deliver the reply, then cut once it is flushed to the client's socket.
        client.write(chunk, () => {
          cutAll()
          a.fired()
        })
        return
      }
      client.write(chunk)
    })
  })
  const port = await new Promise<number>((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address()
      resolve(typeof addr === 'object' && addr ? addr.port : 0)
    })
  })
  return {
    port,
    get open() {
      return state.open
    },
    set open(v: boolean) {
      state.open = v
    },
    cut: cutAll,
    cutAfterReply(marker: string) {
      return new Promise<void>((resolve) => {
        armed = { marker: Buffer.from(marker), fired: resolve }
      })
    },
    close: async () => {
      state.open = false
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
