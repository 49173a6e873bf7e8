package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Name string `json:"name"`
}

type Embedded struct {
	Tag string `json:"tag"`
}

type strictInput struct {
	Embedded
	To      string            `json:"to"`
	Items   []inner           `json:"items"`
	ByID    map[string]inner  `json:"byId"`
	Free    map[string]string `json:"free"`
	Raw     json.RawMessage   `json:"raw"`
	When    time.Time         `json:"when"`
	Plain   int
	Ignored string `json:"-"`
}

func TestCheckDataKeys(t *testing.T) {
	typ := reflect.TypeFor[strictInput]()
	cases := []struct {
		name, data string
		ok         bool
	}{
		{"exact_keys", `{"to":"x","items":[{"name":"a"},{"name":"b"}],"byId":{"K":{"name":"c"}},"tag":"t","Plain":1}`, true},
		{"key_in_another_case", `{"TO":"x"}`, false},
		{"key_twice", `{"to":"x","to":"y"}`, false},
		{"key_escaped", `{"\u0074o":"x"}`, false},
		{"nested_key_in_another_case", `{"items":[{"name":"a"},{"NAME":"b"}]}`, false},
		{"nested_key_twice", `{"items":[{"name":"a","name":"b"}]}`, false},
		{"map_keys_are_the_clients", `{"free":{"ANY":"1","Case":"2"},"byId":{"x":{"name":"n"}}}`, true},
		{"map_key_twice", `{"free":{"a":"1","a":"2"}}`, false},
		{"value_of_a_map_in_another_case", `{"byId":{"x":{"Name":"n"}}}`, false},
		{"raw_message_keys_are_free_but_not_twice", `{"raw":{"Whatever":1}}`, true},
		{"raw_message_key_twice", `{"raw":{"a":1,"a":2}}`, false},
		{"strings_that_look_like_keys", `{"to":"a\":b","tag":"{\"to\":1}"}`, true},
		{"promoted_field_in_another_case", `{"Tag":"x"}`, false},
		{"field_without_a_tag_by_its_go_name", `{"Plain":1}`, true},
		{"ignored_field", `{"Ignored":"x"}`, false},
		{"top_level_array_of_structs", `[{"name":"a"},{"nAme":"b"}]`, true}, // not a slice type: anything
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDataKeys([]byte(tc.data), typ)
			if (err == nil) != tc.ok {
				t.Fatalf("checkDataKeys(%s) = %v, want ok %v", tc.data, err, tc.ok)
			}
		})
	}
	many := []byte(`{"free":{`)
	for i := range 5000 {
		many = fmt.Appendf(many, `"k%d":"v",`, i)
	}
	if err := checkDataKeys(append(many, `"k17":"again"}}`...), typ); !errors.Is(err, errDuplicateKey) {
		t.Fatalf("a duplicate among many keys: %v", err)
	}
	if err := checkDataKeys(append(many[:len(many)-1], `}}`...), typ); err != nil {
		t.Fatalf("5,000 distinct keys: %v", err)
	}
	if err := checkDataKeys([]byte(strings.Repeat("[", maxDataDepth+1)+strings.Repeat("]", maxDataDepth+1)), nil); !errors.Is(err, errTooDeep) {
		t.Fatalf("data nested past the bound: %v", err)
	}
	if err := checkDataKeys([]byte(`[{"name":"a"},{"nAme":"b"}]`), reflect.TypeFor[[]inner]()); err == nil {
		t.Fatal("a slice input's element key in another case was accepted")
	}
}
