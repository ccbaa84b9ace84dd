"""Deployment of the worker: image (build, ECR push), task definitions, one-off tasks, the ECS service and
its autoscaling, IAM roles and the CloudFormation stack. :class:`~crowdcount.aws.deploy.deployer.Deployer`
runs a whole deployment; the modules beside it are the steps, usable on their own with injected clients.
"""
