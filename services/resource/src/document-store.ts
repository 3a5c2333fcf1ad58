import { randomUUID } from 'node:crypto'

export interface Document {
  id: string
  title: string
  body: string
  owner: string
  created_at: string
}

/** The example API's data: an in-memory list, bounded so that a loop of POSTs cannot exhaust memory. */
export class DocumentStore {
  readonly #documents: Document[] = []
  readonly #max: number

  constructor(seed: readonly Omit<Document, 'id' | 'created_at'>[] = [], maxDocuments = 10_000) {
    this.#max = maxDocuments
    for (const d of seed) this.add(d.title, d.body, d.owner, new Date(0))
  }

  list(): readonly Document[] {
    return this.#documents
  }

  get size(): number {
    return this.#documents.length
  }

  add(title: string, body: string, owner: string, now: Date = new Date()): Document {
    const doc: Document = { id: randomUUID(), title, body, owner, created_at: now.toISOString() }
    this.#documents.push(doc)
    if (this.#documents.length > this.#max) this.#documents.shift()
    return doc
  }
}
