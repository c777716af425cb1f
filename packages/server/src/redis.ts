// `@holdfast/server/redis`: the Redis engine, on a subpath of its own so that an app on the memory
// engine never loads a Redis client (ioredis) or the circuit breaker (opossum).
export { RedisEngine, type RedisEngineOptions } from './engine/redis-engine.js'
