// Package gateway lets standard tools use a Braid cluster: a Redis
// protocol (RESP2) server and an HTTP/JSON API for the kv and bank
// applications. Every command becomes one or more BFT requests, and a
// result is returned only once f+1 replicas sent the same one (the client
// SDK's matching, inside the gateway): the gateway is trusted by its local
// users, the replicas are not.
//
// One gateway carries many connections at once through a Pool of admitted
// client keys: each request takes a free SDK client, so k keys give k
// requests in flight, while the replicas' exactly-once rule (one
// outstanding request per client) stays as it is. docs/gateway.md argues
// the choice and lists the commands and routes.
//
// The kv application must use the shared keyspace (kv_scope "shared"):
// under per-client scope each pool key would see its own keys, and a
// value written through one connection would vanish for the next command.
package gateway
