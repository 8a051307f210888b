package awsfake

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"
)

type kinesisStream struct {
	shards  int
	seq     []uint64 // per shard
	records []Record
}

// CreateKinesisStream creates a Kinesis data stream with shards shards.
func (s *Server) CreateKinesisStream(name string, shards int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinesis[name] = &kinesisStream{shards: shards, seq: make([]uint64, shards)}
}

// StreamARN is the ARN of a Kinesis stream of the fake.
func (s *Server) StreamARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", s.region, Account, name)
}

// KinesisRecords returns the records stored in a stream, in arrival order.
func (s *Server) KinesisRecords(stream string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.kinesis[stream]; st != nil {
		return slices.Clone(st.records)
	}
	return nil
}

// shardOf maps a partition key to a shard as Kinesis does: the MD5 of the
// key as a 128-bit integer, the hash key range split evenly.
func shardOf(key string, shards int) int {
	sum := md5.Sum([]byte(key))
	hi := binary.BigEndian.Uint64(sum[:8])
	h := new(big.Int).SetUint64(hi)
	h.Mul(h, big.NewInt(int64(shards)))
	h.Rsh(h, 64)
	return int(h.Int64())
}

func (s *Server) kinesisOp(op string, body []byte) (any, *Fault) {
	if op != "PutRecords" {
		return nil, &Fault{Type: "UnknownOperationException", Message: "Unknown operation Kinesis_20131202." + op}
	}
	var in struct {
		Records []struct {
			Data            []byte  `json:"Data"`
			PartitionKey    *string `json:"PartitionKey"`
			ExplicitHashKey *string `json:"ExplicitHashKey"`
		} `json:"Records"`
		StreamName *string `json:"StreamName"`
		StreamARN  *string `json:"StreamARN"`
	}
	if f := decode(body, &in); f != nil {
		return nil, f
	}
	sc, lim, _ := s.snapshot()
	name := ""
	s.mu.Lock()
	region := s.region
	s.mu.Unlock()
	switch {
	case in.StreamName == nil && in.StreamARN == nil:
		return nil, &Fault{Type: "ValidationException", Message: "Either StreamName or StreamARN should be provided."}
	case in.StreamARN != nil:
		prefix := fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/", region, Account)
		n, ok := strings.CutPrefix(*in.StreamARN, prefix)
		if !ok {
			return nil, &Fault{Type: "AccessDeniedException", Message: fmt.Sprintf("User is not authorized to perform kinesis:PutRecords on resource %s", *in.StreamARN)}
		}
		if in.StreamName != nil && *in.StreamName != n {
			return nil, &Fault{Type: "InvalidArgumentException", Message: "StreamARN and StreamName do not name the same stream."}
		}
		name = n
	default:
		name = *in.StreamName
	}
	n := len(in.Records)
	switch {
	case n == 0:
		return nil, &Fault{Type: "ValidationException", Message: constraint("[]", "records", "Member must have length greater than or equal to 1")}
	case n > lim.KinesisMaxRecords:
		return nil, &Fault{Type: "ValidationException", Message: constraint("[...]", "records", fmt.Sprintf("Member must have length less than or equal to %d", lim.KinesisMaxRecords))}
	}
	recs := make([]Record, n)
	total := 0
	for i, r := range in.Records {
		field := fmt.Sprintf("records.%d.member", i+1)
		switch {
		case r.PartitionKey == nil:
			return nil, &Fault{Type: "ValidationException", Message: constraint("null", field+".partitionKey", "Member must not be null")}
		case utf8.RuneCountInString(*r.PartitionKey) < 1:
			return nil, &Fault{Type: "ValidationException", Message: constraint(*r.PartitionKey, field+".partitionKey", "Member must have length greater than or equal to 1")}
		case utf8.RuneCountInString(*r.PartitionKey) > 256:
			return nil, &Fault{Type: "ValidationException", Message: constraint(*r.PartitionKey, field+".partitionKey", "Member must have length less than or equal to 256")}
		case len(r.Data) > lim.KinesisMaxRecordBytes:
			return nil, &Fault{Type: "ValidationException", Message: constraint(fmt.Sprintf("java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]", len(r.Data), len(r.Data)), field+".data", fmt.Sprintf("Member must have length less than or equal to %d", lim.KinesisMaxRecordBytes))}
		}
		size := len(r.Data) + len(*r.PartitionKey)
		if size > lim.KinesisMaxRecordBytes {
			return nil, &Fault{Type: "InvalidArgumentException", Message: fmt.Sprintf("Record %d has a size of %d bytes (data and partition key), exceeding the limit of %d bytes.", i, size, lim.KinesisMaxRecordBytes)}
		}
		total += size
		recs[i] = Record{Data: r.Data, PartitionKey: *r.PartitionKey}
	}
	if total > lim.KinesisMaxRequestBytes {
		return nil, &Fault{Type: "InvalidArgumentException", Message: fmt.Sprintf("Records size exceeds %d MB limit", lim.KinesisMaxRequestBytes>>20)}
	}
	s.mu.Lock()
	st := s.kinesis[name]
	s.mu.Unlock()
	if st == nil {
		return nil, &Fault{Type: "ResourceNotFoundException", Message: fmt.Sprintf("Stream %s under account %s not found.", name, Account)}
	}
	if sc.Call != nil {
		if f := sc.Call(&Call{Op: op, Stream: name, Records: recs}); f != nil {
			return nil, f
		}
	}
	type entry struct {
		SequenceNumber string `json:"SequenceNumber,omitempty"`
		ShardID        string `json:"ShardId,omitempty"`
		ErrorCode      string `json:"ErrorCode,omitempty"`
		ErrorMessage   string `json:"ErrorMessage,omitempty"`
	}
	out := struct {
		FailedRecordCount int     `json:"FailedRecordCount"`
		Records           []entry `json:"Records"`
		EncryptionType    string  `json:"EncryptionType"`
	}{Records: make([]entry, n), EncryptionType: "NONE"}
	codes := make([]string, n)
	msgs := make([]string, n)
	if sc.Record != nil {
		for i := range recs {
			codes[i], msgs[i] = sc.Record(op, name, i, &recs[i])
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		if codes[i] != "" {
			out.FailedRecordCount++
			out.Records[i] = entry{ErrorCode: codes[i], ErrorMessage: msgs[i]}
			continue
		}
		sh := shardOf(recs[i].PartitionKey, st.shards)
		st.seq[sh]++
		r := recs[i]
		r.ShardID = fmt.Sprintf("shardId-%012d", sh)
		r.SequenceNumber = fmt.Sprintf("4959%04d%048d", sh, st.seq[sh])
		if !s.discard {
			st.records = append(st.records, r)
		}
		out.Records[i] = entry{SequenceNumber: r.SequenceNumber, ShardID: r.ShardID}
	}
	return out, nil
}
