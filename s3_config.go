package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/fastingest/fastingest/sink/filesink"
	"github.com/fastingest/fastingest/sink/s3ship"
)

// s3Options are the settings that mean something only with S3_BUCKET.
var s3Options = []string{"S3_PREFIX", "S3_COMPRESSION", "S3_UPLOAD_CONCURRENCY"}

// checkS3 checks the S3 settings against each other and the sink: given
// says which settings were set (in the environment or by flag). Shipping is
// the file sink's: S3_BUCKET with another sink, or an S3 setting without
// S3_BUCKET, is a mistake to report, not to ignore.
func (c *config) checkS3(given map[string]bool) error {
	if c.S3Bucket == "" {
		for _, name := range s3Options {
			if given[name] {
				return &configError{name: "S3_BUCKET", value: "",
					accepts: "a bucket name when " + name + " is set: " + name + " means nothing without S3_BUCKET"}
			}
		}
		return nil
	}
	if c.Sink != "file" {
		return &configError{name: "S3_BUCKET", value: c.S3Bucket,
			accepts: "SINK=file: S3_BUCKET ships the file sink's segments (SINK is " + c.Sink + ")"}
	}
	return nil
}

// newShipper returns the shipper of the file sink's closed segments to
// S3_BUCKET, or nil without one. Region, credentials and endpoint come from
// the AWS SDK's default chain and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL.
func (c config) newShipper(log *slog.Logger) (filesink.Shipper, error) {
	if c.S3Bucket == "" {
		return nil, nil
	}
	// The configuration is loaded once, at startup; an EC2 instance's
	// region is asked of its metadata service, which answers at once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s3ship.New(ctx, s3ship.Config{Dir: c.DataDir, Bucket: c.S3Bucket, Prefix: c.S3Prefix,
		Compression: c.S3Compression, Concurrency: c.S3UploadConcurrency, Logger: log})
}
