"""A monthly AWS Budgets cost budget whose alerts go to an SNS topic.

One ACTUAL notification per percentage of the limit and, optionally, one FORECASTED: AWS Budgets
checks the month's cost several times a day and publishes to the topic when a threshold is
passed (the topic's policy and its KMS key must let budgets.amazonaws.com publish: AlertTopic and
EncryptionKey do). A budget counts the whole account unless a cost filter narrows it; a tag
filter counts only once its key is an activated cost-allocation tag (Billing console, or `aws ce
update-cost-allocation-tags-status`), and until then the budget stays at $0.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws


@dataclass(frozen=True)
class CostBudgetProps:
    name: str
    account_id: str  # the account whose cost it counts (named, not looked up: synth stays offline)
    monthly_limit_usd: float
    alert_at_percent: tuple[int, ...]
    forecast_at_percent: int | None
    topic_arn: str
    # {"environment": "dev"}: count only costs carrying these cost-allocation tags.
    tag_filter: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.monthly_limit_usd <= 0:
            raise ValueError(f"budget {self.name}: the limit must be > 0")
        if not 1 <= len(self.alert_at_percent) + (self.forecast_at_percent is not None) <= 10:
            raise ValueError(f"budget {self.name}: AWS Budgets takes 1 to 10 notifications")


class CostBudget(Construct):
    def __init__(self, scope: Construct, id_: str, props: CostBudgetProps):
        super().__init__(scope, id_)
        b = aws.budgets_budget

        def notify(kind: str, percent: int) -> b.BudgetsBudgetNotification:
            return b.BudgetsBudgetNotification(
                notification_type=kind, comparison_operator="GREATER_THAN", threshold=percent,
                threshold_type="PERCENTAGE", subscriber_sns_topic_arns=[props.topic_arn])

        notifications = [notify("ACTUAL", p) for p in props.alert_at_percent]
        if props.forecast_at_percent is not None:
            notifications.append(notify("FORECASTED", props.forecast_at_percent))
        tags = [f"user:{key}${value}" for key, value in (props.tag_filter or {}).items()]
        filters = [b.BudgetsBudgetCostFilter(name="TagKeyValue", values=tags)] if tags else None
        self.budget = b.BudgetsBudget(
            self, "budget", name=props.name, account_id=props.account_id, budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=f"{props.monthly_limit_usd:.2f}", limit_unit="USD",
            notification=notifications, cost_filter=filters,
        )
