package codec_test

import (
	"fmt"

	"github.com/gossip-dev/gossip/codec"
)

type note struct {
	From string `codec:"f"`
	Body []byte `codec:"b"`
}

func ExampleMsgpack() {
	cd := codec.Msgpack()
	frame, err := cd.Marshal(&note{From: "127.0.0.1:7001", Body: []byte("hello")})
	if err != nil {
		panic(err)
	}
	var n note
	if err := cd.Unmarshal(frame, &n); err != nil {
		panic(err)
	}
	fmt.Printf("%s says %s\n", n.From, n.Body)
	// Output: 127.0.0.1:7001 says hello
}

// Encoding many values into one reused buffer: a caller that hands each
// frame on before encoding the next allocates nothing per frame.
func ExampleAppendMarshaler() {
	app, ok := codec.Msgpack().(codec.AppendMarshaler)
	if !ok {
		return
	}
	buf := make([]byte, 0, 256)
	for i := range 3 {
		var err error
		buf, err = app.AppendMarshal(buf[:0], &note{From: "p", Body: []byte{byte('a' + i)}})
		if err != nil {
			panic(err)
		}
		fmt.Println(len(buf), "bytes")
	}
	// Output:
	// 10 bytes
	// 10 bytes
	// 10 bytes
}

// Decoding a frame the caller owns without copying its byte fields: Body
// shares the frame's memory, so the frame must not change while the note
// is in use.
func ExampleAliasUnmarshaler() {
	frame, err := codec.Msgpack().Marshal(&note{From: "p", Body: []byte("in place")})
	if err != nil {
		panic(err)
	}
	al, ok := codec.Msgpack().(codec.AliasUnmarshaler)
	if !ok {
		return
	}
	var n note
	if err := al.UnmarshalAlias(frame, &n); err != nil {
		panic(err)
	}
	fmt.Println(string(n.Body), cap(n.Body) == len(n.Body))
	// Output: in place true
}
