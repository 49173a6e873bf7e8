//go:build redis

package main

import (
	"github.com/wsgate/wsgate/adapter"
	"github.com/wsgate/wsgate/adapter/redis"
)

func newRedisBroker(addr string) (adapter.Broker, error) {
	return redis.New(redis.Options{Addrs: []string{addr}})
}
