export * from './ports.js'
export * from './redis.js'
export * from './process.js'
