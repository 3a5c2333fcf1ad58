export * from './errors.js'
export * from './logger.js'
export * from './config.js'
export * from './revocation.js'
