"""Write use cases: the admin API's (subscriptions), the consumer's (news) and the workers'
(deliveries, mails and reminders), each in one transaction."""
