# The trust policy of a role stsvend vends, as `stsvend trust-policy` renders it from
# policies/trust/stsvend-target-role.json (tests/functional/test_terraform.py holds the two equal).
# No provider: it only computes the JSON.

terraform {
  required_version = ">= 1.5"
}

variable "service_role_arn" {
  description = "stsvend's service role (stsvend deploy-info --stage prod)"
  type        = string
  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$", var.service_role_arn))
    error_message = "service_role_arn must be an IAM role ARN."
  }
}

variable "external_id" {
  description = "the external id the role's grants carry; null: none required"
  type        = string
  default     = null
  validation {
    # RE2 repeats at most 1000 times: the length is checked apart.
    condition     = var.external_id == null || try(length(regex("^[A-Za-z0-9+=,.@:/_-]+$", var.external_id)) >= 2 && length(var.external_id) <= 1224, false)
    error_message = "external_id must be 2-1224 characters of [A-Za-z0-9+=,.@:/_-]."
  }
}

variable "allowed_callers" {
  description = "patterns of the callers (the stsvend:caller session tag) whose sessions the role admits: arn:... for IAM callers, oidc:<issuer>:<grant> for OIDC callers (CI jobs), which only an oidc: pattern admits; default: every IAM caller the grants allow"
  type        = list(string)
  default     = ["arn:*"]
  validation {
    # As `stsvend trust-policy --allowed-caller` checks them (CALLER_PATTERN).
    condition     = length(var.allowed_callers) > 0 && alltrue([for p in var.allowed_callers : can(regex("^(arn|oidc):[A-Za-z0-9_.:/=+@*?-]{1,251}$", p))])
    error_message = "allowed_callers must be one or more patterns of arn:... (IAM callers) or oidc:<issuer>:<grant> (OIDC callers), of [A-Za-z0-9_.:/=+@*?-]."
  }
}

locals {
  # One pattern as a string, as the checkout's template has it; several as a list.
  callers = jsondecode(length(var.allowed_callers) == 1 ? jsonencode(var.allowed_callers[0]) : jsonencode(var.allowed_callers))
  tagged  = { "aws:RequestTag/stsvend:caller" = local.callers }
  policy = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AssumeFromStsvend"
        Effect    = "Allow"
        Principal = { AWS = var.service_role_arn }
        Action    = "sts:AssumeRole"
        Condition = merge(
          var.external_id == null ? {} : { StringEquals = { "sts:ExternalId" = var.external_id } },
          { StringLike = local.tagged },
        )
      },
      {
        Sid       = "TagAndSourceIdentityFromStsvend"
        Effect    = "Allow"
        Principal = { AWS = var.service_role_arn }
        Action    = ["sts:TagSession", "sts:SetSourceIdentity"]
        Condition = { StringLike = local.tagged }
      },
    ]
  }
}

output "json" {
  description = "the trust policy, as JSON"
  value       = jsonencode(local.policy)
}
