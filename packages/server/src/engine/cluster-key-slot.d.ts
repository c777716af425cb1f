// cluster-key-slot (the Redis Cluster hash slot of a key, from ioredis's authors) ships no types.
declare module 'cluster-key-slot' {
  /** The hash slot (0..16383) of a key, honouring a {hash tag}. */
  function calculateSlot(key: string | Buffer): number
  export default calculateSlot
}
