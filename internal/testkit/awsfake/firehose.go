package awsfake

import (
	"fmt"
	"slices"
)

type deliveryStream struct {
	records []Record
}

// CreateDeliveryStream creates a Firehose delivery stream.
func (s *Server) CreateDeliveryStream(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.firehose[name] = &deliveryStream{}
}

// FirehoseRecords returns the records stored in a delivery stream, in
// arrival order.
func (s *Server) FirehoseRecords(stream string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.firehose[stream]; st != nil {
		return slices.Clone(st.records)
	}
	return nil
}

func (s *Server) firehoseOp(op string, body []byte) (any, *Fault) {
	if op != "PutRecordBatch" {
		return nil, &Fault{Type: "UnknownOperationException", Message: "Unknown operation Firehose_20150804." + op}
	}
	var in struct {
		DeliveryStreamName *string `json:"DeliveryStreamName"`
		Records            []struct {
			Data []byte `json:"Data"`
		} `json:"Records"`
	}
	if f := decode(body, &in); f != nil {
		return nil, f
	}
	sc, lim, _ := s.snapshot()
	if in.DeliveryStreamName == nil {
		return nil, &Fault{Type: "InvalidArgumentException", Message: constraint("null", "deliveryStreamName", "Member must not be null")}
	}
	name := *in.DeliveryStreamName
	n := len(in.Records)
	switch {
	case n == 0:
		return nil, &Fault{Type: "InvalidArgumentException", Message: constraint("[]", "records", "Member must have length greater than or equal to 1")}
	case n > lim.FirehoseMaxRecords:
		return nil, &Fault{Type: "InvalidArgumentException", Message: constraint("[...]", "records", fmt.Sprintf("Member must have length less than or equal to %d", lim.FirehoseMaxRecords))}
	}
	recs := make([]Record, n)
	total := 0
	for i, r := range in.Records {
		if len(r.Data) > lim.FirehoseMaxRecordBytes {
			return nil, &Fault{Type: "InvalidArgumentException", Message: constraint(fmt.Sprintf("java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]", len(r.Data), len(r.Data)),
				fmt.Sprintf("records.%d.member.data", i+1), fmt.Sprintf("Member must have length less than or equal to %d", lim.FirehoseMaxRecordBytes))}
		}
		if r.Data == nil {
			return nil, &Fault{Type: "InvalidArgumentException", Message: constraint("null", fmt.Sprintf("records.%d.member.data", i+1), "Member must not be null")}
		}
		total += len(r.Data)
		recs[i] = Record{Data: r.Data}
	}
	if total > lim.FirehoseMaxRequestBytes {
		return nil, &Fault{Type: "InvalidArgumentException", Message: fmt.Sprintf("Records size exceeds %d MB limit", lim.FirehoseMaxRequestBytes>>20)}
	}
	s.mu.Lock()
	st := s.firehose[name]
	s.mu.Unlock()
	if st == nil {
		return nil, &Fault{Type: "ResourceNotFoundException", Message: fmt.Sprintf("Firehose %s under account %s not found.", name, Account)}
	}
	if sc.Call != nil {
		if f := sc.Call(&Call{Op: op, Stream: name, Records: recs}); f != nil {
			return nil, f
		}
	}
	type entry struct {
		RecordID     string `json:"RecordId,omitempty"`
		ErrorCode    string `json:"ErrorCode,omitempty"`
		ErrorMessage string `json:"ErrorMessage,omitempty"`
	}
	out := struct {
		FailedPutCount   int     `json:"FailedPutCount"`
		Encrypted        bool    `json:"Encrypted"`
		RequestResponses []entry `json:"RequestResponses"`
	}{RequestResponses: make([]entry, n)}
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
			out.FailedPutCount++
			out.RequestResponses[i] = entry{ErrorCode: codes[i], ErrorMessage: msgs[i]}
			continue
		}
		r := recs[i]
		r.RecordID = fmt.Sprintf("%032x%024x", s.recordID.Add(1), len(st.records))
		if !s.discard {
			st.records = append(st.records, r)
		}
		out.RequestResponses[i] = entry{RecordID: r.RecordID}
	}
	return out, nil
}
