//go:build !redis

package main

import (
	"errors"

	"github.com/wsgate/wsgate/adapter"
)

// errNoRedis is what -redis answers in a binary built without the redis tag
// (the tag keeps the harness building while adapter/redis does not).
var errNoRedis = errors.New("built without adapter/redis: rebuild with -tags redis")

func newRedisBroker(string) (adapter.Broker, error) { return nil, errNoRedis }
