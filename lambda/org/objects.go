package org

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kms-rotator/kms-rotator/lambda/request"
)

// The objects of one execution in the organization bucket, under
// request.OrgPrefix(execution): the Distributed Map reads targetsObject
// (its ItemReader) and writes its results below the same folder
// (ResultWriter); org-summary reads those and resolutionObject.
const (
	targetsObject    = "targets.json"
	resolutionObject = "resolution.json"
)

// maxObjectBytes bounds what org-summary reads from one object: a result
// file of the Distributed Map holds the children of up to 5 GB of results
// in AWS's own bound, far above what a sweep writes (about 1 KB a target).
const maxObjectBytes = 256 << 20

// writeTargets puts the targets (a JSON array, the Distributed Map's item
// file) and the whole resolution in the execution's folder, and turns rep
// into the small answer that names them.
func (s *Service) writeTargets(ctx context.Context, rep *TargetsReport, execution string) error {
	if s.c.S3 == nil {
		return errors.New("no S3 client to write the targets with")
	}
	if execution == "" {
		execution = rep.RunID
	}
	dir := request.OrgPrefix(execution)
	rep.Items = &Object{Bucket: s.cfg.OrgBucket, Key: dir + targetsObject}
	rep.Resolution = &Object{Bucket: s.cfg.OrgBucket, Key: dir + resolutionObject}
	items, err := json.Marshal(rep.Targets)
	if err != nil {
		return err
	}
	whole, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	for _, o := range []struct {
		obj  *Object
		body []byte
	}{{rep.Items, items}, {rep.Resolution, whole}} {
		if err := s.put(ctx, o.obj.Key, o.body); err != nil {
			return err
		}
	}
	rep.Targets, rep.Accounts = nil, nil
	if len(rep.Excluded) > s.maxKeep {
		rep.Excluded = rep.Excluded[:s.maxKeep]
	}
	return nil
}

// put writes one object of the organization bucket, encrypted with SSE-S3
// as the evidence records are.
func (s *Service) put(ctx context.Context, key string, body []byte) error {
	_, err := s.c.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.cfg.OrgBucket),
		Key:                  aws.String(key),
		Body:                 bytes.NewReader(body),
		ContentType:          aws.String("application/json"),
		ServerSideEncryption: s3types.ServerSideEncryptionAes256,
	})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", s.cfg.OrgBucket, key, err)
	}
	return nil
}

// get reads one JSON object of the organization bucket into v.
func (s *Service) get(ctx context.Context, key string, v any) error {
	if s.c.S3 == nil {
		return errors.New("no S3 client to read the results with")
	}
	out, err := s.c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.OrgBucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", s.cfg.OrgBucket, key, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, maxObjectBytes+1))
	if err != nil {
		return fmt.Errorf("reading s3://%s/%s: %w", s.cfg.OrgBucket, key, err)
	}
	if len(body) > maxObjectBytes {
		return fmt.Errorf("s3://%s/%s: more than %d bytes", s.cfg.OrgBucket, key, maxObjectBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("s3://%s/%s: not the JSON expected: %w", s.cfg.OrgBucket, key, err)
	}
	return nil
}
