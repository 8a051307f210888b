package elasticsearch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/sluice-agent/sluice/config"
)

// awsSigner signs requests with SigV4 for Amazon OpenSearch Service.
type awsSigner struct {
	signer  *v4.Signer
	creds   aws.CredentialsProvider
	region  string
	service string
}

// newAWSSigner loads the default credential chain (env, shared config,
// web identity / IRSA, ECS and EKS pod identity, IMDS); nothing is fetched
// before the first request.
func newAWSSigner(ctx context.Context, c *config.AWSSigning, hosts []*url.URL) (*awsSigner, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	s := &awsSigner{signer: v4.NewSigner(), creds: ac.Credentials, region: ac.Region, service: c.Service}
	if s.service == "" {
		s.service = "es"
	}
	if s.region == "" {
		for _, h := range hosts {
			if s.region = regionFromHost(h.Hostname()); s.region != "" {
				break
			}
		}
	}
	if s.region == "" {
		return nil, fmt.Errorf("aws: no region: set aws.region (or AWS_REGION)")
	}
	if c.RoleARN != "" {
		s.creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(ac), c.RoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "sluice" }))
	}
	if s.creds == nil {
		return nil, fmt.Errorf("aws: no credential provider")
	}
	return s, nil
}

// regionFromHost reads REGION from *.REGION.es.amazonaws.com or
// *.REGION.aoss.amazonaws.com.
func regionFromHost(h string) string {
	labels := strings.Split(strings.ToLower(h), ".")
	for i := 1; i+2 < len(labels); i++ {
		if (labels[i] == "es" || labels[i] == "aoss") && labels[i+1] == "amazonaws" {
			return labels[i-1]
		}
	}
	return ""
}

// sign adds X-Amz-Date, X-Amz-Content-Sha256 (OpenSearch Serverless
// requires it), X-Amz-Security-Token with session credentials, and
// Authorization. payloadHash is the hex SHA-256 of the body as sent
// (compressed).
func (s *awsSigner) sign(ctx context.Context, req *http.Request, payloadHash string) error {
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("aws credentials: %w", err)
	}
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := s.signer.SignHTTP(ctx, creds, req, payloadHash, s.service, s.region, time.Now()); err != nil {
		return fmt.Errorf("aws sigv4: %w", err)
	}
	return nil
}
