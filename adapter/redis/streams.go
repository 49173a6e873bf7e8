package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/rueidis"

	"github.com/wsgate/wsgate/adapter"
)

// Every message a topic's subscribers receive starts with one byte that
// says whether a position precedes the signed payload:
//
//	0x00 sealed                       published without a stream
//	0x01 offset ":" epoch ":" sealed  published with a stream
//
// The publish script writes the position, which Redis assigns; it cannot
// sign it, since it does not hold the key (see the package documentation
// on what the HMAC covers).
const (
	markPlain    = 0x00
	markPosition = 0x01
)

// maxEpochLen bounds what a receiver accepts as an epoch; ours are
// adapter.NewEpoch's 16 characters.
const maxEpochLen = adapter.MaxEpochLen

var errBadFrame = errors.New("malformed position header")

// splitPosition parses the header of a received message.
func splitPosition(msg string) (adapter.Position, string, error) {
	if msg == "" {
		return adapter.Position{}, "", errBadFrame
	}
	switch msg[0] {
	case markPlain:
		return adapter.Position{}, msg[1:], nil
	case markPosition:
	default:
		return adapter.Position{}, "", errBadFrame
	}
	rest := msg[1:]
	i := strings.IndexByte(rest, ':')
	if i <= 0 || i > 20 {
		return adapter.Position{}, "", errBadFrame
	}
	offset, err := strconv.ParseUint(rest[:i], 10, 64)
	if err != nil || offset == 0 {
		return adapter.Position{}, "", errBadFrame
	}
	rest = rest[i+1:]
	j := strings.IndexByte(rest, ':')
	if j <= 0 || j > maxEpochLen {
		return adapter.Position{}, "", errBadFrame
	}
	return adapter.Position{Offset: offset, Epoch: rest[:j]}, rest[j+1:], nil
}

// parsePosition reads "offset:epoch" as the scripts return it; "0:" is the
// zero Position.
func parsePosition(s string) (adapter.Position, error) {
	o, e, ok := strings.Cut(s, ":")
	offset, err := strconv.ParseUint(o, 10, 64)
	if !ok || err != nil || (offset == 0) != (e == "") {
		return adapter.Position{}, fmt.Errorf("redis: unexpected position %q", s)
	}
	return adapter.Position{Offset: offset, Epoch: e}, nil
}

// Keys of a topic. They share the hash slot of the topic's channel, so that
// one script may touch them and (S)PUBLISH to the channel in a cluster:
//
//	{<channel>}:m          hash: e (epoch), o (top offset)
//	{<channel>}:s          stream: entry <offset>-0, fields t (ms), d (sealed payload)
//	{<channel>}:i:<hash>   string: "offset:epoch" of the first publish with the key
//
// where <channel> is Options.Prefix + topic. A channel holding a brace
// would not be its own hash tag; its keys are then "{<tag>}<channel>:m"…,
// with a tag chosen to land on the channel's slot. The idempotency key is
// hashed so that its length and bytes are bounded, and an idempotency key
// is therefore per topic.
func streamKeys(channel string) (meta, stream string) {
	base := keyBase(channel)
	return base + ":m", base + ":s"
}

func idempotencyKey(channel, key string) string {
	sum := sha256.Sum256([]byte(key))
	return keyBase(channel) + ":i:" + hex.EncodeToString(sum[:16])
}

func keyBase(channel string) string {
	if !strings.ContainsAny(channel, "{}") {
		return "{" + channel + "}"
	}
	return "{" + slotTags()[slotOf(channel)] + "}" + channel
}

// slotTags maps every cluster slot to a short hash tag that lands on it.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var tags [numSlots]string
	for n, left := 0, numSlots; left > 0; n++ {
		tag := strconv.Itoa(n)
		if s := slotOf(tag); tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return &tags
})

// streamSrc is the one command of a publish with a stream or an
// idempotency key, and of a history read. A publish checks the key, assigns
// the offset, appends the entry and publishes, atomically, so that pub/sub
// order is offset order.
//
//	KEYS: meta, stream, [idempotency key]
//	ARGV: run_id of the server process (see incarnation.go; "": ask INFO),
//	      then "p" and: channel, sealed payload, epoch to create,
//	          size (0: no stream), ttl ms, meta ttl ms, idempotency ttl ms,
//	          PUBLISH or SPUBLISH
//	      or "h" and: since offset, since epoch, limit (0: none),
//	          ttl ms (0: any age), epoch to create ("": none),
//	          meta ttl ms (0: leave it)
//
// A publish returns {1, "offset:epoch", run_id} or, for a key already used,
// {0, the position stored with it, run_id}. A history read returns {top,
// epoch, run_id} when the entries cannot all be returned, and {top, epoch,
// run_id, 1, payload…} when they can.
//
// The position is the topic's only while the process that wrote it runs:
// another process (a restart, a failover) may hold an older copy of it, so
// the script starts a new epoch then.
const streamSrc = `
local run = ARGV[1]
if run == '' then
  run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
end
local function position(create)
  local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'r')
  if m[1] and m[3] == run then return m[1], tonumber(m[2]) or 0 end
  if create == '' then return nil, 0 end
  -- A stream left without its position belongs to a lost epoch.
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', create, 'o', 0, 'r', run)
  return create, 0
end
local function millis()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if ARGV[2] == 'p' then
  local idem = KEYS[3]
  if idem then
    local first = redis.call('GET', idem)
    if first then return {0, first, run} end
  end
  local pos, msg = '0:', nil
  if tonumber(ARGV[6]) > 0 then
    local epoch = position(ARGV[5])
    local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[6], offset .. '-0', 't', millis(), 'd', ARGV[4])
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
    redis.call('PEXPIRE', KEYS[1], ARGV[8])
    pos = offset .. ':' .. epoch
    msg = '\1' .. pos .. ':' .. ARGV[4]
  else
    msg = '\0' .. ARGV[4]
  end
  if idem then
    redis.call('SET', idem, pos, 'PX', ARGV[9])
  end
  redis.call(ARGV[10], ARGV[3], msg)
  return {1, pos, run}
end
local epoch, top = position(ARGV[7])
if not epoch then return {0, '', run} end
if ARGV[8] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
end
local since = tonumber(ARGV[3])
if ARGV[4] ~= epoch or since > top then return {top, epoch, run} end
local missed = top - since
local limit = tonumber(ARGV[5])
if limit > 0 and missed > limit then return {top, epoch, run} end
if missed == 0 then return {top, epoch, run, 1} end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', top .. '-0')
if #entries ~= missed then return {top, epoch, run} end
local oldest = 0
if tonumber(ARGV[6]) > 0 then oldest = millis() - tonumber(ARGV[6]) end
local out = {top, epoch, run, 1}
for i, e in ipairs(entries) do
  local f, at, data = e[2], nil, nil
  for j = 1, #f, 2 do
    if f[j] == 't' then at = tonumber(f[j + 1]) elseif f[j] == 'd' then data = f[j + 1] end
  end
  if e[1] ~= (since + i) .. '-0' or not at or not data or at < oldest then return {top, epoch, run} end
  out[#out + 1] = data
end
return out
`

// run executes sc on keys with EVALSHA, or EVAL when Redis does not have
// it yet (after a restart or a failover).
func (sc *script) run(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	build := func(eval bool) rueidis.Completed {
		if eval {
			return c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
		}
		return c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	r := c.Do(ctx, build(false))
	if noScript(r.Error()) {
		r = c.Do(ctx, build(true))
	}
	return r
}

func ms(d interface{ Milliseconds() int64 }) string {
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// publishScripted publishes through publishScript: o has a stream or an
// idempotency key, and its defaults applied.
func (b *Broker) publishScripted(ctx context.Context, channel string, sealed []byte, o adapter.PublishOptions) (adapter.Position, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	meta, stream := streamKeys(channel)
	keys := []string{meta, stream}
	if o.IdempotencyKey != "" {
		keys = append(keys, idempotencyKey(channel, o.IdempotencyKey))
	}
	cmd := "PUBLISH"
	if b.opts.Cluster {
		cmd = "SPUBLISH"
	}
	// BinaryString avoids a copy: sealed is ours and never reused.
	args := []string{"p", channel, rueidis.BinaryString(sealed), adapter.NewEpoch(),
		strconv.Itoa(o.Stream.Size), ms(o.Stream.TTL), ms(o.Stream.MetaTTL), ms(o.IdempotencyTTL), cmd}
	reply, err := b.streams.run(ctx, b.client, slotOf(channel), keys, args)
	if err != nil {
		return adapter.Position{}, b.storeErr(err)
	}
	if len(reply) != 3 {
		return adapter.Position{}, fmt.Errorf("redis: publish script returned %d values", len(reply))
	}
	fresh, err1 := reply[0].AsInt64()
	s, err2 := reply[1].ToString()
	if err := errors.Join(err1, err2); err != nil {
		return adapter.Position{}, fmt.Errorf("redis: publish script reply: %w", err)
	}
	pos, err := parsePosition(s)
	if err != nil {
		return adapter.Position{}, err
	}
	if fresh == 0 {
		return pos, adapter.ErrDuplicate
	}
	return pos, nil
}

// storeErr wraps an error that is not Redis' own answer in ErrUnavailable.
func (b *Broker) storeErr(err error) error {
	if isRedisErr(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// History implements adapter.Broker in one round trip. Every entry's HMAC
// tag is checked (not its freshness: entries are old by nature); an entry
// with a bad tag makes the result incomplete and is counted in
// Stats.Rejected.
func (b *Broker) History(ctx context.Context, topic string, q adapter.HistoryQuery) (adapter.HistoryResult, error) {
	if b.closed.Load() {
		return adapter.HistoryResult{}, adapter.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return adapter.HistoryResult{}, err
	}
	q, err := q.WithDefaults()
	if err != nil {
		return adapter.HistoryResult{}, fmt.Errorf("redis: history %q: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	channel := b.opts.Prefix + topic
	meta, stream := streamKeys(channel)
	create, ttl, metaTTL := "", "0", "0"
	if q.Stream.Enabled() {
		create, ttl, metaTTL = adapter.NewEpoch(), ms(q.Stream.TTL), ms(q.Stream.MetaTTL)
	}
	args := []string{"h", strconv.FormatUint(q.Since.Offset, 10), q.Since.Epoch, strconv.Itoa(q.Limit), ttl, create, metaTTL}
	reply, err := b.streams.run(ctx, b.client, slotOf(channel), []string{meta, stream}, args)
	if err != nil {
		return adapter.HistoryResult{}, fmt.Errorf("redis: history %q: %w", topic, b.storeErr(err))
	}
	return b.historyResult(channel, q.Since, reply)
}

// historyResult decodes the history script's reply and opens each entry.
func (b *Broker) historyResult(channel string, since adapter.Position, reply []rueidis.RedisMessage) (adapter.HistoryResult, error) {
	var res adapter.HistoryResult
	if len(reply) < 3 {
		return res, fmt.Errorf("redis: history script returned %d values", len(reply))
	}
	top, err1 := reply[0].AsInt64()
	epoch, err2 := reply[1].ToString()
	if err := errors.Join(err1, err2); err != nil || top < 0 {
		return res, fmt.Errorf("redis: history script reply: %w", err)
	}
	if epoch != "" {
		res.Top = adapter.Position{Offset: uint64(top), Epoch: epoch}
	}
	if len(reply) < 4 {
		return res, nil
	}
	entries := make([]adapter.Entry, 0, len(reply)-4)
	for i, m := range reply[4:] {
		sealed, err := m.ToString()
		if err != nil {
			return adapter.HistoryResult{Top: res.Top}, fmt.Errorf("redis: history script reply: %w", err)
		}
		payload, _, ok := b.sign.open(channel, sealed) // stored: tag only, see openSealed
		if !ok {
			b.reject(channel)
			b.log.Warn("redis_history_entry_rejected", slog.String("channel", channel),
				slog.Uint64("offset", since.Offset+uint64(i)+1))
			return adapter.HistoryResult{Top: res.Top}, nil
		}
		entries = append(entries, adapter.Entry{Offset: since.Offset + uint64(i) + 1, Payload: payload})
	}
	res.Entries, res.Complete = entries, true
	return res, nil
}

// Erase implements adapter.Broker: one DEL of the topic's stream and
// position. Idempotency keys are left to expire: they hold positions, not
// payloads.
func (b *Broker) Erase(ctx context.Context, topic string) error {
	if b.closed.Load() {
		return adapter.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	meta, stream := streamKeys(b.opts.Prefix + topic)
	if err := b.client.Do(ctx, b.client.B().Del().Key(meta, stream).Build()).Error(); err != nil {
		return fmt.Errorf("redis: erase %q: %w", topic, b.storeErr(err))
	}
	return nil
}
