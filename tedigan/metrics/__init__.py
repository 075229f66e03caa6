"""tedigan.metrics"""
