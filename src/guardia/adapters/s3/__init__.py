"""S3-compatible object storage (AWS, MinIO, R2, moto) for backups."""
