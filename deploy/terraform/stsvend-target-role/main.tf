# A role stsvend vends, in a target account (docs/deploying.md, "Rolling out trust"): the Terraform
# form of deploy/cloudformation/stsvend-target-role.json. Apply it once per account, e.g. with one
# provider alias per account:
#
#   module "deployer" {
#     source           = "./deploy/terraform/stsvend-target-role"
#     providers        = { aws = aws.account_222222222222 }
#     role_name        = "deployer"
#     service_role_arn = "arn:aws:iam::999999999999:role/stsvend-prod-api_handler"
#     external_id      = "stsvend-prod"
#   }

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "role_name" {
  description = "the role's name"
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name))
    error_message = "role_name must be an IAM role name."
  }
}

variable "role_path" {
  description = "the role's path, e.g. /stsvend-target/"
  type        = string
  default     = "/"
}

variable "service_role_arn" {
  description = "stsvend's service role (stsvend deploy-info --stage prod)"
  type        = string
}

variable "external_id" {
  description = "the external id the role's grants carry; null: none required"
  type        = string
  default     = null
}

variable "allowed_callers" {
  description = "patterns of the callers (the stsvend:caller session tag) whose sessions the role admits: arn:... for IAM callers, oidc:<issuer>:<grant> for OIDC callers (CI jobs), which only an oidc: pattern admits; default: every IAM caller the grants allow"
  type        = list(string)
  default     = ["arn:*"]
}

variable "permissions_boundary_arn" {
  description = "a managed policy that bounds the role's permissions; null: none"
  type        = string
  default     = null
}

variable "managed_policy_arns" {
  description = "managed policies to attach (what the role may do)"
  type        = set(string)
  default     = []
}

module "trust_policy" {
  source           = "./trust-policy"
  service_role_arn = var.service_role_arn
  external_id      = var.external_id
  allowed_callers  = var.allowed_callers
}

resource "aws_iam_role" "target" {
  name                 = var.role_name
  path                 = var.role_path
  description          = "vended by stsvend"
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy   = module.trust_policy.json
  tags                 = { managed-by = "stsvend-target-role" }
}

resource "aws_iam_role_policy_attachment" "target" {
  for_each   = var.managed_policy_arns
  role       = aws_iam_role.target.name
  policy_arn = each.value
}

output "role_arn" {
  value = aws_iam_role.target.arn
}
