package main

import (
	"context"
	"slices"
	"sync"

	"github.com/wsgate/wsgate/auth"
	"github.com/wsgate/wsgate/room"
)

// projects is the service's own data: who is a member of which project.
// A real service keeps it in its database; every node reads the same.
type projects struct {
	mu      sync.RWMutex // guards members
	members map[string][]string
}

func newProjects(seed map[string][]string) *projects {
	p := &projects{members: make(map[string][]string, len(seed))}
	for id, users := range seed {
		p.members[id] = slices.Clone(users)
	}
	return p
}

func (p *projects) isMember(project, user string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Contains(p.members[project], user)
}

func (p *projects) add(project, user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.members[project], user) {
		p.members[project] = append(p.members[project], user)
	}
}

func (p *projects) remove(project, user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members[project] = slices.DeleteFunc(p.members[project], func(u string) bool { return u == user })
}

// canJoin is the room rule of project:{id}: members only. A database
// error returned here would answer the client INTERNAL, not FORBIDDEN, and
// be logged with its cause.
func (p *projects) canJoin(_ context.Context, id auth.Identity, r room.Name) (bool, error) {
	return p.isMember(r.Arg, id.UserID), nil
}

// projectRoom is the room of a project's live updates.
func projectRoom(id string) string { return "project:" + id }
